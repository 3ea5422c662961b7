"""A sequential match's fixation cross, mask and blank: defaults, bounds, and the words of
their errors."""

from __future__ import annotations

import pytest

from survey.block_settings import PHASE_SETTINGS, setting_errors, validate_block_settings


def test_phases_default_to_none():
    settings = validate_block_settings("match", {"presentation": "sequential"})
    assert {name: settings[name] for name in PHASE_SETTINGS} == dict.fromkeys(PHASE_SETTINGS, 0)


@pytest.mark.parametrize("name", PHASE_SETTINGS)
@pytest.mark.parametrize("value", [0, 1, 250, 5000])
def test_each_phase_takes_0_to_5000_ms(name, value):
    settings = validate_block_settings("match", {"presentation": "sequential", name: value})
    assert settings[name] == value


@pytest.mark.parametrize(
    "name, words", [("fixation_ms", "fixation cross"), ("mask_ms", "mask"), ("isi_ms", "blank")]
)
@pytest.mark.parametrize("value", [-1, 5001, 2.5, "300", True, None])
def test_a_phase_out_of_bounds_is_refused_in_plain_words(name, words, value):
    with pytest.raises(ValueError) as error:
        validate_block_settings("match", {"presentation": "sequential", name: value})
    message = str(error.value)
    assert message.startswith(f"{name} (the {words}")
    assert "whole number of milliseconds from 0 to 5000" in message


@pytest.mark.parametrize("name", PHASE_SETTINGS)
def test_a_phase_needs_the_sequential_presentation(name):
    with pytest.raises(ValueError, match="needs the sequential presentation"):
        validate_block_settings("match", {name: 200})
    # 0 (none) is fine side by side.
    assert validate_block_settings("match", {name: 0})[name] == 0


@pytest.mark.parametrize("task", ["rate", "choose", "detect"])
def test_other_tasks_have_no_phases(task):
    with pytest.raises(ValueError, match="unknown setting 'fixation_ms'"):
        validate_block_settings(task, {"fixation_ms": 200})


@pytest.mark.parametrize(
    "name, label", [("fixation_ms", "Fixation cross"), ("mask_ms", "Mask"), ("isi_ms", "Blank")]
)
def test_the_workspace_names_a_phase_out_of_bounds_beside_its_field(name, label):
    errors = setting_errors("match", {"presentation": "sequential", name: 5001})
    assert list(errors) == [name]
    assert errors[name][0].startswith(label)
    assert errors[name][0].endswith("between 0 and 5,000 ms; you wrote 5,001.")
    assert setting_errors("match", {"presentation": "sequential", name: 5000}) == {}


@pytest.mark.parametrize("name", PHASE_SETTINGS)
def test_the_workspace_refuses_a_phase_side_by_side(name):
    errors = setting_errors("match", {"presentation": "side_by_side", name: 200})
    assert list(errors) == [name]
    assert "only a sequential presentation has one" in errors[name][0]
    assert setting_errors("match", {"presentation": "side_by_side", name: 0}) == {}
    # A presentation that is itself wrong is reported alone, not blamed on the phase too.
    assert list(setting_errors("match", {"presentation": "upside_down", name: 200})) == [
        "presentation"
    ]
