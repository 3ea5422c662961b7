"""The learn-then-recognise (memory) paradigm's schedule: list rotation, phases, names, checks."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter

import pytest

from survey.block_settings import setting_errors, validate_block_settings
from survey.design import (
    NAME_SURNAMES,
    BlockInfo,
    DesignError,
    build_schedule,
    check_design,
    design_order,
    list_conditions,
    memory_role,
    memory_roles,
    schedule_fingerprint,
)
from tests.helpers import ALL_TASKS, make_identities

LABEL = "Your new colleague Dr {name}"
MEMORY = [
    BlockInfo("study", "learn", {"label": LABEL, "orienting_question": "How friendly?"}),
    BlockInfo("filler", "rate", {}),
    BlockInfo("test", "recognise", {"name_recall": True}),
]


# --- list rotation ------------------------------------------------------------------------


@pytest.mark.parametrize("n_lists", [4, 8, 12])
@pytest.mark.parametrize("n_identities", range(8, 26))
def test_every_identity_is_studied_real_studied_ai_and_a_foil_equally_often(n_identities, n_lists):
    identities = make_identities(n_identities)
    tally = {i.code: Counter() for i in identities}
    for list_index in range(n_lists):
        for code, role in memory_roles(identities, list_index, n_lists).items():
            tally[code][role] += 1
    per_role = n_lists // 4
    for counts in tally.values():
        # Target and foil equally often; as a target, real and AI equally often.
        assert counts == {"real": per_role, "ai": per_role, "foil": 2 * per_role}


@pytest.mark.parametrize("n_identities", [8, 12, 16, 40])
def test_each_list_has_as_many_studied_real_as_ai_and_as_many_foils_as_targets(n_identities):
    identities = make_identities(n_identities)
    for list_index in range(4):
        counts = Counter(memory_roles(identities, list_index, 4).values())
        quarter = n_identities // 4
        assert counts == {"real": quarter, "ai": quarter, "foil": 2 * quarter}


def test_the_encoding_condition_is_the_identitys_condition_in_the_other_blocks():
    identities = make_identities(12)
    for list_index in range(4):
        roles = memory_roles(identities, list_index, 4)
        conditions = list_conditions(identities, list_index, 4)
        for code, role in roles.items():
            assert role in ("foil", conditions[code])


def test_memory_role_rows_over_four_lists():
    rows = [[memory_role(rank, lst, 4) for rank in range(4)] for lst in range(4)]
    assert rows == [
        ["real", "ai", "foil", "foil"],
        ["ai", "real", "foil", "foil"],
        ["foil", "foil", "real", "ai"],
        ["foil", "foil", "ai", "real"],
    ]


def test_memory_role_needs_a_multiple_of_four_lists():
    with pytest.raises(ValueError, match="multiple of 4 lists"):
        memory_role(0, 0, 2)


def test_memory_roles_follow_design_order_not_the_order_given():
    identities = make_identities(8, [("woman", "30"), ("man", "18")] * 4)
    assert memory_roles(identities, 0, 4) == memory_roles(list(reversed(identities)), 0, 4)
    first = design_order(identities)[0].code
    assert memory_roles(identities, 0, 4)[first] == "real"


# --- the schedule -------------------------------------------------------------------------


@pytest.mark.parametrize("list_index", range(4))
def test_study_phase_shows_the_targets_headshots_and_test_phase_everyone_in_a_new_photo(
    list_index,
):
    identities = make_identities(12)
    by_code = {i.code: i for i in identities}
    roles = memory_roles(identities, list_index, 4)
    specs = build_schedule(identities, MEMORY, list_index, 4, seed=31)
    learn = [s for s in specs if s.task == "learn"]
    test = [s for s in specs if s.task == "recognise"]
    # Study, then the filler block, then the test.
    assert [s.block for s in specs] == ["study"] * 6 + ["filler"] * 12 + ["test"] * 12
    assert sorted(s.identity for s in learn) == sorted(c for c, r in roles.items() if r != "foil")
    for s in learn:
        assert s.condition == roles[s.identity]
        assert s.image == by_code[s.identity].headshots[s.condition]
        assert s.studied is None and s.label and s.options == ()
    assert sorted(s.identity for s in test) == sorted(roles)
    for s in test:
        identity = by_code[s.identity]
        assert s.studied == (roles[s.identity] != "foil")
        assert s.condition == (roles[s.identity] if s.studied else None)
        assert s.image in identity.probes and s.probe_image == s.image
        assert s.image not in identity.headshots.values()
        assert s.probe_identity == s.identity
        assert not (s.is_practice or s.is_attention)


def test_names_are_distinct_kept_from_study_to_test_and_offered_four_at_a_time():
    identities = make_identities(16)
    specs = build_schedule(identities, MEMORY, 2, 4, seed=5)
    studied = {s.identity: s.label for s in specs if s.task == "learn"}
    assert len(set(studied.values())) == len(studied) == 8
    assert all(name.split(". ")[1] in NAME_SURNAMES for name in studied.values())
    for s in (s for s in specs if s.task == "recognise"):
        assert len(s.options) == 4 and len(set(s.options)) == 4
        assert set(s.options) <= set(studied.values())
        if s.studied:
            assert s.label == studied[s.identity] and s.label in s.options
        else:
            assert s.label is None


def test_without_a_label_no_names_and_without_recall_no_options():
    blocks = [BlockInfo("study", "learn", {}), BlockInfo("test", "recognise", {})]
    specs = build_schedule(make_identities(8), blocks, 0, 4, seed=1)
    assert all(s.label is None and s.options == () for s in specs)


def test_a_role_without_name_is_kept_as_written_and_names_no_one():
    assert validate_block_settings("learn", {"label": " Your new colleague "})["label"] == (
        "Your new colleague"
    )
    assert setting_errors("learn", {"label": "Your new colleague"}) == {}
    blocks = [
        BlockInfo("study", "learn", {"label": "Your new colleague"}),
        BlockInfo("test", "recognise", {}),
    ]
    specs = build_schedule(make_identities(8), blocks, 0, 4, seed=1)
    assert all(s.label is None and s.options == () for s in specs)
    # Without names there is nothing to recall.
    recall = [blocks[0], BlockInfo("test", "recognise", {"name_recall": True})]
    assert check_design(make_identities(8), recall, 4) == [
        "The recognise block 'test' asks for names, but the learn block 'study' shows none:"
        " give it a label with {name}."
    ]


def test_names_and_orders_come_from_the_seed():
    identities = make_identities(12)
    one = build_schedule(identities, MEMORY, 1, 4, seed=8)
    assert one == build_schedule(identities, MEMORY, 1, 4, seed=8)
    other = build_schedule(identities, MEMORY, 1, 4, seed=9)
    names = [[s.label for s in specs if s.task == "learn"] for specs in (one, other)]
    assert names[0] != names[1]


def test_schedules_without_memory_blocks_keep_their_fingerprint():
    specs = build_schedule(make_identities(8), ALL_TASKS, 0, 2, seed=3)
    memory = ("studied", "label", "options")
    rows = [{k: v for k, v in dataclasses.asdict(s).items() if k not in memory} for s in specs]
    text = json.dumps(rows, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert schedule_fingerprint(specs) == hashlib.sha256(text.encode("ascii")).hexdigest()
    memory_specs = build_schedule(make_identities(8), MEMORY, 0, 4, seed=3)
    assert schedule_fingerprint(memory_specs) != schedule_fingerprint(
        [dataclasses.replace(s, label=None) for s in memory_specs]
    )


# --- checks -------------------------------------------------------------------------------


def test_memory_design_checks_name_every_problem():
    identities = make_identities(6)
    identities[0] = dataclasses.replace(identities[0], probes=())
    blocks = [
        BlockInfo("test", "recognise", {"name_recall": True}),
        BlockInfo("study", "learn", {}),
    ]
    problems = check_design(identities, blocks, 2)
    assert "The recognise block 'test' must come after the learn block 'study'" in problems[0]
    assert any("these identities have no probe photo: P001" in p for p in problems)
    assert any("2 lists; learn and recognise blocks need a multiple of 4" in p for p in problems)
    assert any("asks for names, but the learn block 'study' shows none" in p for p in problems)
    assert any("6 identities; learn and recognise blocks need at least 8" in p for p in problems)
    with pytest.raises(DesignError):
        build_schedule(identities, blocks, 0, 2, seed=1)


def test_a_memory_study_has_one_learn_and_one_recognise_block():
    blocks = [BlockInfo("study", "learn", {}), BlockInfo("filler", "rate", {})]
    problems = check_design(make_identities(8), blocks, 4)
    assert problems == [
        "A memory study needs one learn block and one recognise block; this one has 1 learn"
        " and 0 recognise block(s)."
    ]


def test_too_many_identities_to_name():
    problems = check_design(make_identities(2 * len(NAME_SURNAMES) + 2), MEMORY, 4)
    assert problems == [
        f"The learn block 'study' names up to {len(NAME_SURNAMES) + 1} people, but there are"
        f" {len(NAME_SURNAMES)} names: use at most {2 * len(NAME_SURNAMES)} identities or no"
        " label."
    ]


# --- settings -----------------------------------------------------------------------------


def test_learn_and_recognise_defaults():
    assert validate_block_settings("learn", None) == {
        "exposure_ms": 3000,
        "label": "",
        "orienting_question": "",
        "instructions": "",
        "break_every": None,
    }
    assert validate_block_settings("learn", {"exposure_ms": None})["exposure_ms"] is None
    assert validate_block_settings("recognise", {}) == {
        "question": "Have you met this person before?",
        "confidence": True,
        "name_recall": False,
        "delay_hours": 0,
        "distractor_s": 0,
        "instructions": "",
        "break_every": None,
    }


@pytest.mark.parametrize(
    ("task", "settings", "message"),
    [
        ("learn", {"exposure_ms": 100}, "exposure_ms must be an integer from 200 to 10000"),
        ("learn", {"exposure_ms": "3000"}, "or None for self-paced"),
        ("learn", {"label": "{name} {name}"}, "label may hold {name} at most once"),
        ("learn", {"label": "{name}" + "x" * 120}, "at most 120 characters"),
        ("learn", {"orienting_question": 3}, "orienting_question must be text"),
        ("learn", {"attention_checks": [1]}, "unknown setting 'attention_checks'"),
        ("learn", {"practice": True}, "unknown setting 'practice'"),
        ("recognise", {"question": " "}, "question must be non-empty text"),
        ("recognise", {"confidence": "yes"}, "confidence must be true or false"),
        ("recognise", {"name_recall": 1}, "name_recall must be true or false"),
        ("recognise", {"n_identities": 8}, "unknown setting 'n_identities'"),
        ("recognise", {"distractor_s": 601}, "distractor_s must be an integer from 0 to 600"),
        ("recognise", {"delay_hours": 1.5}, "delay_hours must be an integer from 0 to 720"),
    ],
)
def test_memory_settings_are_checked(task, settings, message):
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}")):
        validate_block_settings(task, settings)
