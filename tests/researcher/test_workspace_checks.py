"""A workspace that checks as you type: every setting is checked when saved, every problem is
said at once beside its field in the researcher's words, and nothing is saved while one is left.
"""

from __future__ import annotations

import re

import pytest

from survey.block_settings import SETTING_RULES, TASKS, fit_errors, setting_errors
from tests.researcher.helpers import MATCH, TRUST, block_id, blocks, rate_form

INTERNAL = re.compile(
    r"exposure_ms|n_identities|attention_checks|scales\[|n_lists|min_median_rt_ms|target_n"
)


def field_errors(page: str) -> list[str]:
    """Return the error texts shown beside the form's fields."""
    return [
        re.sub(r"<[^>]+>", " ", block).strip()
        for block in re.findall(r'<ul class="field-errors"[^>]*>(.*?)</ul>', page, re.S)
    ]


def test_every_task_setting_has_a_rule_with_a_label():
    for task in TASKS:
        assert setting_errors(task, {}) == {}
    for name, rule in SETTING_RULES.items():
        assert rule.label and not INTERNAL.search(rule.label), name


@pytest.mark.parametrize(
    ("task", "settings", "expected"),
    [
        (
            "match",
            {"exposure_ms": 100},
            {
                "exposure_ms": [
                    "Exposure must be a whole number between 200 and 10,000 ms; you wrote 100."
                ]
            },
        ),
        (
            "match",
            {"exposure_ms": 100, "n_identities": 3, "attention_checks": [0, 2, 2]},
            {
                "exposure_ms": [
                    "Exposure must be a whole number between 200 and 10,000 ms; you wrote 100."
                ],
                "n_identities": [
                    "Identities shown must be at least 4 (2 shown real and 2 shown AI), or empty"
                    " to show every identity; you wrote 3."
                ],
                "attention_checks": [
                    "Attention checks: positions start at 1 (the first trial after the practice);"
                    " you wrote 0.",
                    "Attention checks: position 2 is listed more than once.",
                ],
            },
        ),
        (
            "rate",
            {"attention_checks": 10**22},
            {
                "attention_checks": [
                    "Attention checks: at most 200 checks in a block; you wrote"
                    " 10,000,000,000,000,000,000,000."
                ]
            },
        ),
        (
            "rate",
            {"attention_checks": -1},
            {
                "attention_checks": [
                    "Attention checks: the number of checks cannot be negative; you wrote -1."
                ]
            },
        ),
        (
            "detect",
            {"attention_checks": list(range(1, 202))},
            {"attention_checks": ["Attention checks: at most 200 checks in a block."]},
        ),
        (
            "detect",
            {"attention_checks": [3, 10_001]},
            {"attention_checks": ["Attention checks: positions go up to 10,000; you wrote 10001."]},
        ),
        (
            "choose",
            {"n_identities": 1, "question": " "},
            {
                "n_identities": [
                    "Identities shown must be at least 2, or empty to show every identity;"
                    " you wrote 1."
                ],
                "question": ["Write the question participants are asked."],
            },
        ),
        (
            "rate",
            {"scales": [{"key": "trust", "question": "Q"}, {"key": "trust", "question": ""}]},
            {
                "scales-1-question": [
                    "Write the question of scale 2, the one participants answer."
                ],
                "scales-1-key": [
                    "Scale 2 uses the key 'trust' like scale 1: each scale needs its own key."
                ],
            },
        ),
        (
            "detect",
            {"confidence": "y"},
            {"confidence": ["Confidence question: choose yes or no; you wrote 'y'."]},
        ),
        (
            "rate",
            {"exposure_ms": 500},
            {
                "exposure_ms": [
                    "A rate block has no exposure setting (only match and learn blocks have one)."
                ]
            },
        ),
    ],
)
def test_setting_errors_name_every_problem_in_plain_words(task, settings, expected):
    assert setting_errors(task, settings) == expected


@pytest.mark.parametrize(
    ("task", "settings", "n_identities", "n_lists", "expected"),
    [
        ("match", {"n_identities": None, "attention_checks": []}, 0, 2, {}),
        # Nothing uploaded yet: what depends on the identities waits for them.
        ("rate", {"n_identities": None, "attention_checks": [40]}, 0, 2, {}),
        (
            "rate",
            {"n_identities": None, "attention_checks": [3, 30]},
            20,
            2,
            {
                "attention_checks": [
                    "Attention checks: position 30 is past the end of the block, which has 22"
                    " trials (20 identities and 2 checks)."
                ]
            },
        ),
        (
            "detect",
            {"n_identities": 8, "attention_checks": 9},
            20,
            2,
            {
                "attention_checks": [
                    "Attention checks: 9 checks are more than the 8 identities this block shows."
                ]
            },
        ),
        (
            "match",
            {"n_identities": 30, "attention_checks": []},
            20,
            2,
            {
                "n_identities": [
                    "Identities shown is 30, but the study has only 20 identities; lower it, or"
                    " leave it empty to show every identity."
                ]
            },
        ),
        (
            "rate",
            {"n_identities": 7, "attention_checks": []},
            20,
            2,
            {
                "n_identities": [
                    "Identities shown must be an even number, so that as many are shown real as"
                    " AI; you wrote 7."
                ]
            },
        ),
        # A choose block shows both headshots: any number of identities fits it.
        ("choose", {"n_identities": 7, "attention_checks": []}, 20, 3, {}),
        (
            "match",
            {"n_identities": None, "attention_checks": []},
            20,
            3,
            {
                "task": [
                    "The study has 3 counterbalancing lists; match, rate and detect blocks need a"
                    " multiple of 2 (each identity is shown real in half the lists and AI in the"
                    " other half). Change the number of lists in the study's settings first."
                ]
            },
        ),
    ],
)
def test_fit_errors_check_a_block_against_the_identities_and_lists(
    task, settings, n_identities, n_lists, expected
):
    assert fit_errors(task, settings, n_identities, n_lists) == expected


def test_a_block_form_shows_every_error_at_once_and_saves_nothing(app, team, owner_client):
    bid = block_id(app, team.study_id, "recognition")
    before = blocks(app, team.study_id)[0].settings
    response = owner_client.post(
        f"/r/studies/{team.study_id}/blocks/{bid}",
        data={
            **MATCH,
            "name": "bad/name",
            "exposure_ms": "100",
            "n_identities": "3",
            "attention_checks": "0, 2",
            "presentation": "sequential",
        },
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    errors = field_errors(page)
    assert len(errors) == 4, errors
    assert "Exposure must be a whole number between 200 and 10,000 ms; you wrote 100." in errors
    assert "Nothing was saved: 4 settings need a change, marked below." in page
    assert not any(INTERNAL.search(e) for e in errors) and "Saved." not in page
    # The form shows what was typed, not what is stored.
    assert 'value="100"' in page and 'value="0, 2"' in page and 'value="bad/name"' in page
    assert re.search(r'<option selected value="sequential"|value="sequential" selected', page)
    assert blocks(app, team.study_id)[0].settings == before


def test_attention_checks_past_the_end_are_refused_when_saved(app, team, owner_client):
    # The team's study has 8 identities: a rate block shows 8 trials plus its checks.
    bid = block_id(app, team.study_id, "impressions")
    url = f"/r/studies/{team.study_id}/blocks/{bid}"
    before = blocks(app, team.study_id)[1].settings
    response = owner_client.post(url, data=rate_form([TRUST], attention_checks="3, 12"))
    assert response.status_code == 400
    assert (
        "Attention checks: position 12 is past the end of the block, which has 10 trials"
        " (8 identities and 2 checks)." in field_errors(response.get_data(as_text=True))
    )
    assert blocks(app, team.study_id)[1].settings == before
    assert (
        owner_client.post(url, data=rate_form([TRUST], attention_checks="3, 10")).status_code == 302
    )
    assert blocks(app, team.study_id)[1].settings["attention_checks"] == [3, 10]


def test_more_than_200_check_positions_are_refused_when_saved(app, team, owner_client):
    bid = block_id(app, team.study_id, "impressions")
    before = blocks(app, team.study_id)[1].settings
    positions = ", ".join(str(p) for p in range(1, 202))
    response = owner_client.post(
        f"/r/studies/{team.study_id}/blocks/{bid}",
        data=rate_form([TRUST], attention_checks=positions),
    )
    assert response.status_code == 400
    assert field_errors(response.get_data(as_text=True)) == [
        "Attention checks: at most 200 checks in a block."
    ]
    assert blocks(app, team.study_id)[1].settings == before


def test_an_identity_count_that_does_not_fit_is_refused_when_saved(app, team, owner_client):
    bid = block_id(app, team.study_id, "recognition")
    url = f"/r/studies/{team.study_id}/blocks/{bid}"
    for typed, message in (
        ("5", "Identities shown must be an even number"),
        ("10", "Identities shown is 10, but the study has only 8 identities"),
    ):
        response = owner_client.post(url, data={**MATCH, "n_identities": typed})
        assert response.status_code == 400 and message in response.get_data(as_text=True)
    assert blocks(app, team.study_id)[0].settings.get("n_identities") is None
    assert owner_client.post(url, data={**MATCH, "n_identities": "6"}).status_code == 302


def test_a_block_that_does_not_fit_the_lists_is_not_added(app, team, owner_client, make_study):
    study_id = make_study(team.owner, title="Odd lists", slug="odd-lists", n_lists=3)
    url = f"/r/studies/{study_id}/blocks"
    response = owner_client.post(url, data={"name": "recognition", "task": "match"})
    assert response.status_code == 400
    assert "The study has 3 counterbalancing lists" in response.get_data(as_text=True)
    assert blocks(app, study_id) == []
    assert owner_client.post(url, data={"name": "preference", "task": "choose"}).status_code == 302


def test_checks_against_the_identities_show_with_the_rules_errors(app, team, owner_client):
    bid = block_id(app, team.study_id, "recognition")
    response = owner_client.post(
        f"/r/studies/{team.study_id}/blocks/{bid}",
        data={**MATCH, "exposure_ms": "100", "attention_checks": "3, 40"},
    )
    errors = field_errors(response.get_data(as_text=True))
    assert response.status_code == 400
    assert errors == [
        "Attention checks: position 40 is past the end of the block, which has 10 trials"
        " (8 identities and 2 checks).",
        "Exposure must be a whole number between 200 and 10,000 ms; you wrote 100.",
    ]
