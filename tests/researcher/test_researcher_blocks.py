"""Blocks: add, configure each task (and its bad inputs), reorder, delete; frozen designs refuse."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from survey.extensions import db
from survey.models import AuditEvent, Block
from survey.researcher.block_routes import format_attention_checks, parse_attention_checks
from tests.researcher.helpers import MATCH, TRUST, block_id, blocks, rate_form


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("", []),
        ("3", [3]),
        ("3, 12", [3, 12]),
        ("3;7", [3, 7]),
        ("2 checks", 2),
        ("1 check", 1),
        (" 4 Checks ", 4),
    ],
)
def test_attention_checks_are_read_as_positions_or_a_count(text, value):
    assert parse_attention_checks(text) == value
    assert parse_attention_checks(format_attention_checks(value)) == value


@pytest.mark.parametrize("text", ["three", "3, x", "-1", "2 checkz", "1.5"])
def test_unreadable_attention_checks_say_how_to_write_them(text):
    with pytest.raises(
        ValueError,
        match="write positions separated by commas, such as 3, 12, or a count such as 2 checks",
    ):
        parse_attention_checks(text)


def test_add_a_block_with_the_tasks_defaults(app, team, owner_client):
    response = owner_client.post(
        f"/r/studies/{team.study_id}/blocks", data={"name": "real or ai", "task": "detect"}
    )
    assert response.status_code == 302
    added = blocks(app, team.study_id)[-1]
    assert response.location.endswith(f"/blocks/{added.id}")
    assert (added.name, added.task, added.position) == ("real or ai", "detect", 3)
    assert added.settings["confidence"] is True and added.settings["attention_checks"] == []
    page = owner_client.get(response.location).get_data(as_text=True)
    assert "real photograph or AI-generated?" in page and "Ask for confidence" in page


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"name": "recognition", "task": "rate"},
            "Another block is called &#39;recognition&#39;; choose another name.",
        ),
        ({"name": "", "task": "rate"}, "Give the block a name."),
        ({"name": "<b>x</b>", "task": "rate"}, "Use letters, digits, spaces"),
        ({"name": "ok", "task": "dance"}, "Not a valid choice."),
        ({"name": "x" * 65, "task": "rate"}, "64 characters"),
    ],
)
def test_adding_a_block_rejects_bad_input(app, team, owner_client, data, message):
    response = owner_client.post(f"/r/studies/{team.study_id}/blocks", data=data)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert len(blocks(app, team.study_id)) == 2


def test_configure_a_sequential_match_block(app, team, owner_client):
    bid = block_id(app, team.study_id, "recognition")
    data = {
        **MATCH,
        "presentation": "sequential",
        "exposure_ms": "3000",
        "fixation_ms": "500",
        "mask_ms": "",
        "isi_ms": "250",
        "attention_checks": "3, 9",
        "practice": "no",
    }
    del data["confidence"]  # an unticked box is not sent
    assert (
        owner_client.post(f"/r/studies/{team.study_id}/blocks/{bid}", data=data).status_code == 302
    )
    settings = blocks(app, team.study_id)[0].settings
    assert settings == {
        "presentation": "sequential",
        "exposure_ms": 3000,
        "fixation_ms": 500,
        "mask_ms": 0,
        "isi_ms": 250,
        "confidence": False,
        "practice": False,
        "attention_checks": [3, 9],
        "n_identities": None,
    }
    with app.app_context():
        assert (
            db.session.scalar(sa.select(AuditEvent.action).order_by(AuditEvent.id.desc()))
            == "block.edit"
        )
    page = owner_client.get(f"/r/studies/{team.study_id}/blocks/{bid}").get_data(as_text=True)
    assert 'value="3, 9"' in page and 'value="3000"' in page and 'value="250"' in page


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"exposure_ms": "50"},
            "Exposure must be a whole number between 200 and 10,000 ms; you wrote 50.",
        ),
        (
            {"exposure_ms": "ten"},
            "Exposure must be a whole number between 200 and 10,000 ms; you wrote &#39;ten&#39;.",
        ),
        (
            {"attention_checks": "a, b"},
            "Attention checks: write positions separated by commas, such as 3, 12",
        ),
        (
            {"attention_checks": "0"},
            "Attention checks: positions start at 1 (the first trial after the practice); you"
            " wrote 0.",
        ),
        ({"attention_checks": "4, 4"}, "Attention checks: position 4 is listed more than once."),
        (
            {"n_identities": "1"},
            "Identities shown must be at least 4 (2 shown real and 2 shown AI), or empty to show"
            " every identity; you wrote 1.",
        ),
        (
            {"n_identities": "many"},
            "Identities shown must be at least 4 (2 shown real and 2 shown AI), or empty to show"
            " every identity; you wrote &#39;many&#39;.",
        ),
        (
            {"n_identities": "5"},
            "Identities shown must be an even number, so that as many are shown real as AI; you"
            " wrote 5.",
        ),
        (
            {"presentation": "upside_down"},
            "Presentation: choose side by side or sequential; you wrote &#39;upside_down&#39;.",
        ),
        (
            {"presentation": "sequential", "fixation_ms": "5001"},
            "Fixation cross must be a whole number between 0 and 5,000 ms; you wrote 5,001.",
        ),
        (
            {"presentation": "sequential", "mask_ms": "-5"},
            "Mask must be a whole number between 0 and 5,000 ms; you wrote -5.",
        ),
        (
            {"presentation": "sequential", "isi_ms": "soon"},
            "Blank before the probe must be a whole number between 0 and 5,000 ms; you wrote"
            " &#39;soon&#39;.",
        ),
        (
            {"presentation": "side_by_side", "fixation_ms": "300"},
            "Fixation cross: only a sequential presentation has one (side by side, both photos"
            " show at once); choose sequential, or set it to 0.",
        ),
        (
            {"practice": "maybe"},
            "Practice trial: choose when this block runs first, yes or no; you wrote"
            " &#39;maybe&#39;.",
        ),
        (
            {"name": "impressions"},
            "Another block is called &#39;impressions&#39;; choose another name.",
        ),
    ],
)
def test_match_settings_reject_bad_input(app, team, owner_client, fields, message):
    bid = block_id(app, team.study_id, "recognition")
    before = blocks(app, team.study_id)[0].settings
    response = owner_client.post(
        f"/r/studies/{team.study_id}/blocks/{bid}", data={**MATCH, **fields}
    )
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert blocks(app, team.study_id)[0].settings == before


def test_rate_scales_are_added_edited_and_removed(app, team, owner_client):
    bid = block_id(app, team.study_id, "impressions")
    url = f"/r/studies/{team.study_id}/blocks/{bid}"
    page = owner_client.get(url).get_data(as_text=True)
    assert (
        'name="scales-0-key"' in page and 'name="scales-1-key"' in page
    )  # one blank row to add a scale
    professional = {
        "key": "professional",
        "question": "How professional?",
        "low_anchor": "Not at all",
        "high_anchor": "Very",
        "min": "1",
        "max": "5",
    }
    assert owner_client.post(url, data=rate_form([TRUST, professional])).status_code == 302
    scales = blocks(app, team.study_id)[1].settings["scales"]
    assert [(s["key"], s["max"]) for s in scales] == [("trust", 7), ("professional", 5)]
    assert (
        owner_client.post(url, data=rate_form([{**TRUST, "remove": "y"}, professional])).status_code
        == 302
    )
    assert [s["key"] for s in blocks(app, team.study_id)[1].settings["scales"]] == ["professional"]
    # Blank rows are ignored.
    blank = {k: "" for k in TRUST}
    assert owner_client.post(url, data=rate_form([professional, blank])).status_code == 302
    assert len(blocks(app, team.study_id)[1].settings["scales"]) == 1


@pytest.mark.parametrize(
    ("scales", "message"),
    [
        (
            [{**TRUST, "key": "same"}],
            "The key of scale 1 cannot be &#39;same&#39;: the names same, confidence, choice,"
            " source, attention, old, name, orienting, seen are taken by the tasks&#39; own"
            " answers.",
        ),
        (
            [{**TRUST, "key": "Trust Me"}],
            "The key of scale 1 must start with a lower-case letter and use only lower-case"
            " letters, digits and _ (at most 32 characters), e.g. trust; you wrote &#39;Trust"
            " Me&#39;.",
        ),
        (
            [TRUST, TRUST],
            "Scale 2 uses the key &#39;trust&#39; like scale 1: each scale needs its own key.",
        ),
        (
            [{**TRUST, "min": "5", "max": "3"}],
            "The highest value of scale 1 must be above its lowest (5); you wrote 3.",
        ),
        (
            [{**TRUST, "min": "1", "max": "200"}],
            "Scale 1 may have at most 101 points; from 1 to 200 it has 200.",
        ),
        (
            [{**TRUST, "key": ""}],
            "Give scale 1 a key, a short name such as trust for its column in trials.csv.",
        ),
        (
            [{**TRUST, "question": ""}],
            "Write the question of scale 1, the one participants answer.",
        ),
        ([{**TRUST, "remove": "y"}], "Give at least one rating scale (a key and a question)."),
        (
            [{**TRUST, "max": "seven"}],
            "The highest value of scale 1 must be a whole number between -1,000 and 1,000; you"
            " wrote &#39;seven&#39;.",
        ),
    ],
)
def test_rate_scales_reject_bad_input(app, team, owner_client, scales, message):
    bid = block_id(app, team.study_id, "impressions")
    before = blocks(app, team.study_id)[1].settings
    response = owner_client.post(f"/r/studies/{team.study_id}/blocks/{bid}", data=rate_form(scales))
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert blocks(app, team.study_id)[1].settings == before


def test_removing_every_scale_counts_as_one_setting_to_change(app, team, owner_client):
    bid = block_id(app, team.study_id, "impressions")
    blank = {k: "" for k in TRUST}
    response = owner_client.post(
        f"/r/studies/{team.study_id}/blocks/{bid}",
        data=rate_form([{**TRUST, "remove": "y"}, blank]),
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Give at least one rating scale (a key and a question)." in page
    assert "Nothing was saved: 1 setting needs a change, marked below." in page


def test_a_bound_out_of_range_is_not_also_called_too_many_points(app, team, owner_client):
    bid = block_id(app, team.study_id, "impressions")
    response = owner_client.post(
        f"/r/studies/{team.study_id}/blocks/{bid}", data=rate_form([{**TRUST, "min": "-5000"}])
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "The lowest value of scale 1 must be a whole number between -1,000 and 1,000" in page
    assert "may have at most" not in page
    assert "Nothing was saved: 1 setting needs a change, marked below." in page


def test_choose_and_detect_blocks(app, team, owner_client):
    url = f"/r/studies/{team.study_id}/blocks"
    owner_client.post(url, data={"name": "preference", "task": "choose"})
    owner_client.post(url, data={"name": "real or ai", "task": "detect"})
    choose, detect = (
        block_id(app, team.study_id, "preference"),
        block_id(app, team.study_id, "real or ai"),
    )
    common = {"practice": "auto", "attention_checks": "1 check", "n_identities": ""}
    empty = owner_client.post(
        f"{url}/{choose}", data={**common, "name": "preference", "question": ""}
    )
    assert (
        empty.status_code == 400
        and "Write the question participants are asked." in empty.get_data(as_text=True)
    )
    ok = owner_client.post(
        f"{url}/{choose}", data={**common, "name": "preference", "question": "Whom would you hire?"}
    )
    assert ok.status_code == 302
    assert (
        owner_client.post(f"{url}/{detect}", data={**common, "name": "real or ai"}).status_code
        == 302
    )
    stored = {b.name: b.settings for b in blocks(app, team.study_id)}
    assert (
        stored["preference"]["question"] == "Whom would you hire?"
        and stored["preference"]["attention_checks"] == 1
    )
    assert stored["real or ai"]["confidence"] is False
    listing = owner_client.get(url).get_data(as_text=True)
    assert "choose blocks, which show both" in listing and "Runs 4th" in listing  # choose runs last


def test_reorder_and_delete_blocks(app, team, owner_client):
    url = f"/r/studies/{team.study_id}/blocks"
    owner_client.post(url, data={"name": "real or ai", "task": "detect"})
    detect = block_id(app, team.study_id, "real or ai")
    assert owner_client.post(f"{url}/{detect}/move", data={"direction": "up"}).status_code == 302
    assert [b.name for b in blocks(app, team.study_id)] == [
        "recognition",
        "real or ai",
        "impressions",
    ]
    owner_client.post(f"{url}/{detect}/move", data={"direction": "up"})
    owner_client.post(
        f"{url}/{detect}/move", data={"direction": "up"}
    )  # already first: nothing moves
    assert [b.name for b in blocks(app, team.study_id)] == [
        "real or ai",
        "recognition",
        "impressions",
    ]
    bad = owner_client.post(f"{url}/{detect}/move", data={"direction": "sideways"})
    assert bad.status_code == 400 and "up or down" in bad.get_data(as_text=True)
    recognition = block_id(app, team.study_id, "recognition")
    assert owner_client.post(f"{url}/{recognition}/delete").status_code == 302
    assert [(b.name, b.position) for b in blocks(app, team.study_id)] == [
        ("real or ai", 1),
        ("impressions", 2),
    ]


def test_a_block_of_another_study_is_404(app, team, owner_client, make_study):
    with app.app_context():
        foreign = Block(
            study_id=team.study_id + 1, position=1, name="theirs", task="rate", settings={}
        )
        db.session.add(foreign)
        db.session.commit()
        foreign_id = foreign.id
    base = f"/r/studies/{team.study_id}/blocks/{foreign_id}"
    assert owner_client.get(base).status_code == 404
    assert owner_client.post(base, data=rate_form([TRUST])).status_code == 404
    assert owner_client.post(f"{base}/delete").status_code == 404
    assert owner_client.post(f"{base}/move", data={"direction": "up"}).status_code == 404


def test_a_frozen_design_refuses_every_block_change(app, team, owner_client):
    assert (
        owner_client.post(f"/r/studies/{team.study_id}/state", data={"state": "open"}).status_code
        == 302
    )
    url = f"/r/studies/{team.study_id}/blocks"
    bid = block_id(app, team.study_id, "recognition")
    before = [(b.name, b.position, b.settings) for b in blocks(app, team.study_id)]
    for path, data in (
        (url, {"name": "late", "task": "rate"}),
        (f"{url}/{bid}", MATCH),
        (f"{url}/{bid}/move", {"direction": "down"}),
        (f"{url}/{bid}/delete", {}),
    ):
        response = owner_client.post(path, data=data)
        assert response.status_code == 409, path
        assert "The design of this study is frozen" in response.get_data(as_text=True)
    assert [(b.name, b.position, b.settings) for b in blocks(app, team.study_id)] == before
    page = owner_client.get(f"{url}/{bid}").get_data(as_text=True)
    assert "shown read-only" in page and "Save block" not in page
    assert re.search(
        r'<select[^>]*disabled[^>]*id="presentation"|<select[^>]*id="presentation"[^>]*disabled',
        page,
    )
    assert "Add block" not in owner_client.get(url).get_data(as_text=True)


def test_viewers_read_block_settings_without_a_form(app, team):
    viewer = team.client(app, "viewer")
    bid = block_id(app, team.study_id, "impressions")
    page = viewer.get(f"/r/studies/{team.study_id}/blocks/{bid}").get_data(as_text=True)
    assert "editors change them" in page and "Save block" not in page
    assert (
        viewer.post(f"/r/studies/{team.study_id}/blocks/{bid}", data=rate_form([TRUST])).status_code
        == 403
    )
