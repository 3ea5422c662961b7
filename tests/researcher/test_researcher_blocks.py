"""Blocks: add, configure each task (and its bad inputs), reorder, delete; frozen designs refuse."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from survey.extensions import db
from survey.models import AuditEvent, Block
from survey.researcher.block_routes import format_attention_checks, parse_attention_checks


def blocks(app, study_id: int) -> list[Block]:
    """Return the study's blocks in order (detached)."""
    with app.app_context():
        rows = db.session.scalars(
            sa.select(Block).where(Block.study_id == study_id).order_by(Block.position)
        ).all()
        for row in rows:
            db.session.expunge(row)
        return rows


def block_id(app, study_id: int, name: str) -> int:
    """Return the id of the study's block with this name."""
    return next(b.id for b in blocks(app, study_id) if b.name == name)


MATCH = {
    "name": "recognition",
    "practice": "auto",
    "attention_checks": "",
    "n_identities": "",
    "presentation": "side_by_side",
    "exposure_ms": "1500",
    "confidence": "y",
}


def rate_form(scales: list[dict], **fields) -> dict:
    """Return the posted fields of a rate block with these scale rows."""
    data = {
        "name": "impressions",
        "practice": "auto",
        "attention_checks": "2",
        "n_identities": "",
        **fields,
    }
    for i, scale in enumerate(scales):
        for key, value in scale.items():
            data[f"scales-{i}-{key}"] = value
    return data


TRUST = {
    "key": "trust",
    "question": "How much do you trust this person?",
    "low_anchor": "Not at all",
    "high_anchor": "Completely",
    "min": "1",
    "max": "7",
}


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
        ValueError, match="write positions such as 3, 12 or a count such as 2 checks"
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
        ({"name": "recognition", "task": "rate"}, "Another block is called &#39;recognition&#39;."),
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
        ({"exposure_ms": "50"}, "exposure_ms must be an integer from 200 to 10000, got 50"),
        ({"exposure_ms": "ten"}, "Not a valid integer value."),
        ({"attention_checks": "a, b"}, "write positions such as 3, 12"),
        ({"attention_checks": "0"}, "attention_checks positions start at 1"),
        ({"attention_checks": "4, 4"}, "attention_checks lists position 4 more than once"),
        ({"n_identities": "1"}, "n_identities must be an integer of at least 4"),
        ({"presentation": "upside_down"}, "Not a valid choice."),
        ({"practice": "maybe"}, "Not a valid choice."),
        ({"name": "impressions"}, "Another block is called"),
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
        ([{**TRUST, "key": "same"}], "scales[0].key &#39;same&#39; is reserved"),
        ([{**TRUST, "key": "Trust Me"}], "scales[0].key must be a snake_case name"),
        ([TRUST, TRUST], "scales use the key &#39;trust&#39; more than once"),
        ([{**TRUST, "min": "5", "max": "3"}], "scales[0] must run from min to a larger max"),
        ([{**TRUST, "question": ""}], "scales[0].question must be non-empty text"),
        ([{**TRUST, "remove": "y"}], "scales must be a non-empty list"),
        ([{**TRUST, "max": "seven"}], "Not a valid integer value."),
    ],
)
def test_rate_scales_reject_bad_input(app, team, owner_client, scales, message):
    bid = block_id(app, team.study_id, "impressions")
    before = blocks(app, team.study_id)[1].settings
    response = owner_client.post(f"/r/studies/{team.study_id}/blocks/{bid}", data=rate_form(scales))
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert blocks(app, team.study_id)[1].settings == before


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
    assert empty.status_code == 400 and "question must be non-empty text" in empty.get_data(
        as_text=True
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
