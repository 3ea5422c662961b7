"""The question builder: add each kind, refuse bad settings by field, reorder, edit, delete;
only while the study is a draft, checked under the study lock."""

from __future__ import annotations

import json
import re

import pytest
import sqlalchemy as sa

from survey.extensions import db
from survey.models import AuditEvent, Study, StudyQuestion
from tests.helpers import set_study


def questions(app, study_id: int) -> list[tuple]:
    """Return (code, kind, text, required, spec) of the study's questions in order."""
    with app.app_context():
        return [
            (q.code, q.kind, q.text, q.required, q.spec)
            for q in db.session.scalars(
                sa.select(StudyQuestion)
                .where(StudyQuestion.study_id == study_id)
                .order_by(StudyQuestion.position)
            )
        ]


def question_id(app, study_id: int, code: str) -> int:
    with app.app_context():
        return db.session.scalar(
            sa.select(StudyQuestion.id).where(
                StudyQuestion.study_id == study_id, StudyQuestion.code == code
            )
        )


ADD = {
    "likert": {
        "code": "trust",
        "text": "Trust?",
        "kind": "likert",
        "min": "1",
        "max": "7",
        "anchors": "1 = Not at all\n4 = Somewhat\n7 = Fully",
        "required": "y",
    },
    "choice": {"code": "seen", "text": "Seen before?", "kind": "choice", "options": "Yes\nNo"},
    "checkboxes": {
        "code": "tools",
        "text": "Tools used",
        "kind": "checkboxes",
        "options": "mj = Midjourney\nsd = Stable Diffusion",
    },
    "number": {
        "code": "hours",
        "text": "Hours online a day",
        "kind": "number",
        "min": "0",
        "max": "24",
    },
    "text": {"code": "note", "text": "Anything else?", "kind": "text", "max_length": "120"},
}
SPECS = {
    "likert": {"min": 1, "max": 7, "anchors": {"1": "Not at all", "4": "Somewhat", "7": "Fully"}},
    "choice": {"options": [["yes", "Yes"], ["no", "No"]]},
    "checkboxes": {"options": [["mj", "Midjourney"], ["sd", "Stable Diffusion"]]},
    "number": {"min": 0, "max": 24},
    "text": {"max_length": 120},
}


def test_add_every_kind_in_order(app, team, owner_client):
    for kind, data in ADD.items():
        response = owner_client.post(f"/r/studies/{team.study_id}/questions", data=data)
        assert response.status_code == 303, kind
    assert questions(app, team.study_id) == [
        (d["code"], kind, d["text"], kind == "likert", SPECS[kind]) for kind, d in ADD.items()
    ]
    page = owner_client.get(f"/r/studies/{team.study_id}/questions").get_data(as_text=True)
    assert "Integers 1 to 7 (1 = Not at all; 4 = Somewhat; 7 = Fully)" in page
    with app.app_context():
        assert (
            db.session.scalar(sa.select(sa.func.count()).where(AuditEvent.action == "question.add"))
            == 5
        )


@pytest.mark.parametrize(
    ("data", "messages"),
    [
        (
            {"code": "Trust me", "text": "", "kind": "likert", "min": "7", "max": "1"},
            [
                "a lower-case letter, then up to 31",
                "Write the question participants read.",
                "The highest point must be above the lowest (7).",
            ],
        ),
        (
            {"code": "status", "text": "Status?", "kind": "choice", "options": "One"},
            ["already a column of participants.csv", "Write at least two options, one per line."],
        ),
        (
            {"code": "age", "text": "Age", "kind": "number", "min": "old"},
            ["The smallest answer must be a number; you wrote “old”."],
        ),
        (
            {"code": "note", "text": "Note", "kind": "text", "max_length": "5000"},
            ["The longest answer must be 1 to 2000 characters; you wrote 5000."],
        ),
        (
            {"code": "", "text": "Seen before?", "kind": "choice", "options": "Yes\nNo"},
            ["Give the question a short code, such as age_band."],
        ),
        (
            {"code": "note", "text": "Why? " * 101, "kind": "text", "max_length": "120"},
            ["A question has at most 500 characters."],
        ),
    ],
)
def test_bad_questions_are_refused_with_every_error_by_its_field(
    app, team, owner_client, data, messages
):
    response = owner_client.post(f"/r/studies/{team.study_id}/questions", data=data)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    for message in messages:
        assert message in page
    assert 'class="field has-errors"' in page
    assert questions(app, team.study_id) == []


def test_codes_are_unique_in_a_study(app, team, owner_client):
    owner_client.post(f"/r/studies/{team.study_id}/questions", data=ADD["choice"])
    again = owner_client.post(f"/r/studies/{team.study_id}/questions", data=ADD["choice"])
    assert again.status_code == 400 and "Another question has the code “seen”." in again.get_data(
        as_text=True
    )
    assert len(questions(app, team.study_id)) == 1


def test_edit_move_and_delete(app, team, owner_client):
    base = f"/r/studies/{team.study_id}/questions"
    for kind in ("choice", "number", "text"):
        owner_client.post(base, data=ADD[kind])
    seen = question_id(app, team.study_id, "seen")
    form = owner_client.get(f"{base}/{seen}").get_data(as_text=True)
    assert "yes = Yes\nno = No" in form
    edited = owner_client.post(
        f"{base}/{seen}",
        data={**ADD["choice"], "code": "seen_before", "options": "Yes\nNo\nNot sure"},
    )
    assert edited.status_code == 303
    bad = owner_client.post(f"{base}/{seen}", data={**ADD["choice"], "options": ""})
    assert bad.status_code == 400
    assert questions(app, team.study_id)[0][0] == "seen_before"
    assert questions(app, team.study_id)[0][4]["options"][-1] == ["not_sure", "Not sure"]
    owner_client.post(f"{base}/{seen}/move", data={"direction": "down"})
    assert [q[0] for q in questions(app, team.study_id)] == ["hours", "seen_before", "note"]
    owner_client.post(
        f"{base}/{question_id(app, team.study_id, 'note')}/move", data={"direction": "up"}
    )
    assert [q[0] for q in questions(app, team.study_id)] == ["hours", "note", "seen_before"]
    assert (
        owner_client.post(f"{base}/{seen}/move", data={"direction": "sideways"}).status_code == 400
    )
    owner_client.post(f"{base}/{seen}/delete")
    assert [q[0] for q in questions(app, team.study_id)] == ["hours", "note"]


def test_viewers_read_and_cannot_change(app, team):
    team.client(app, "owner").post(f"/r/studies/{team.study_id}/questions", data=ADD["choice"])
    viewer = team.client(app, "viewer")
    page = viewer.get(f"/r/studies/{team.study_id}/questions")
    assert page.status_code == 200 and "Seen before?" in page.get_data(as_text=True)
    assert "Add a question" not in page.get_data(as_text=True)
    assert viewer.post(f"/r/studies/{team.study_id}/questions", data=ADD["text"]).status_code == 403
    qid = question_id(app, team.study_id, "seen")
    assert viewer.post(f"/r/studies/{team.study_id}/questions/{qid}/delete").status_code == 403
    assert len(questions(app, team.study_id)) == 1


def test_a_question_of_another_study_is_not_found(app, team, owner_client):
    stranger = team.client(app, "stranger")
    with app.app_context():
        other = db.session.scalar(sa.select(Study.id).where(Study.slug == "other"))
    stranger.post(f"/r/studies/{other}/questions", data=ADD["choice"])
    qid = question_id(app, other, "seen")
    assert (
        owner_client.post(f"/r/studies/{team.study_id}/questions/{qid}/delete").status_code == 404
    )
    assert len(questions(app, other)) == 1


@pytest.mark.parametrize("state", ["open", "closed", "archived"])
def test_questions_change_only_while_the_study_is_a_draft(app, team, owner_client, state):
    base = f"/r/studies/{team.study_id}/questions"
    owner_client.post(base, data=ADD["choice"])
    qid = question_id(app, team.study_id, "seen")
    set_study(app, team.study_id, state=state)
    for url, data in (
        (base, ADD["text"]),
        (f"{base}/{qid}", {**ADD["choice"], "text": "Changed"}),
        (f"{base}/{qid}/move", {"direction": "down"}),
        (f"{base}/{qid}/delete", {}),
    ):
        assert owner_client.post(url, data=data).status_code == 409, url
    assert questions(app, team.study_id) == [
        ("seen", "choice", "Seen before?", False, SPECS["choice"])
    ]
    assert "only while the study is a draft" in owner_client.get(base).get_data(as_text=True)


def test_a_new_study_starts_with_the_default_demographics_and_a_copy_keeps_its_own(
    app, team, owner_client
):
    response = owner_client.post("/r/studies/new", data={"title": "Faces at work"})
    assert response.status_code == 302
    with app.app_context():
        new = db.session.scalar(sa.select(Study.id).where(Study.slug == "faces-at-work"))
    assert [q[0] for q in questions(app, new)] == [
        "age_band",
        "gender",
        "ai_familiarity",
        "recognised_anyone",
    ]
    owner_client.post(f"/r/studies/{team.study_id}/questions", data=ADD["likert"])
    owner_client.post(f"/r/studies/{team.study_id}/duplicate")
    with app.app_context():
        copy = db.session.scalar(sa.select(sa.func.max(Study.id)))
    assert copy != new and questions(app, copy) == questions(app, team.study_id)


def test_a_study_definition_carries_its_questions(app, team, owner_client):
    for kind in ("likert", "checkboxes", "number"):
        owner_client.post(f"/r/studies/{team.study_id}/questions", data=ADD[kind])
    definition = owner_client.get(f"/r/studies/{team.study_id}/definition.json").get_json()
    assert [q["code"] for q in definition["questions"]] == ["trust", "tools", "hours"]
    imported = owner_client.post("/r/studies/import", data={"text": json.dumps(definition)})
    assert imported.status_code == 302
    new_id = int(imported.location.rsplit("/", 1)[1])
    assert questions(app, new_id) == questions(app, team.study_id)
    # An older file without questions gives the defaults; a bad question is refused, whole.
    del definition["questions"]
    older = owner_client.post("/r/studies/import", data={"text": json.dumps(definition)})
    assert [q[0] for q in questions(app, int(older.location.rsplit("/", 1)[1]))][:2] == [
        "age_band",
        "gender",
    ]
    with app.app_context():
        before = db.session.scalar(sa.select(sa.func.count(Study.id)))
    for bad, message in (
        ({"code": "x", "kind": "likert", "text": "T", "spec": {"min": 3, "max": 1}}, "highest"),
        ({"code": "x", "kind": "choice", "text": "T", "spec": {"options": 5}}, "does not fit"),
        ({"code": "Bad", "kind": "text", "text": "T", "spec": {}}, "lower-case letter"),
        ({"code": "x", "kind": "robot", "text": "T", "spec": {}}, "Choose a kind"),
    ):
        refused = owner_client.post(
            "/r/studies/import", data={"text": json.dumps({**definition, "questions": [bad]})}
        )
        assert refused.status_code == 400 and message in refused.get_data(as_text=True), bad
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Study.id))) == before


def test_deleting_a_question_asks_first_and_undo_restores_its_place(app, team, owner_client):
    base = f"/r/studies/{team.study_id}/questions"
    for kind in ("choice", "number", "text"):
        owner_client.post(base, data=ADD[kind])
    before = questions(app, team.study_id)
    hours = question_id(app, team.study_id, "hours")
    url = f"{base}/{hours}/delete"
    listing = owner_client.get(base).get_data(as_text=True)
    # The list links to the confirmation page; no one-click delete form.
    assert f'href="{url}"' in listing and f'action="{url}"' not in listing
    asked = owner_client.get(url)
    assert asked.status_code == 200
    page = asked.get_data(as_text=True)
    assert "Delete the question hours?" in page and "You can undo this" in page
    assert "stay in participants.csv, in the column hours" in page
    assert f'action="{url}"' in page and len(questions(app, team.study_id)) == 3

    assert owner_client.post(url).status_code == 303
    assert [q[0] for q in questions(app, team.study_id)] == ["seen", "note"]
    page = owner_client.get(base).get_data(as_text=True)
    assert "Deleted question hours." in page and "Recently deleted (1)" in page
    undo = re.search(r'action="(/r/studies/\d+/undo/\d+)"', page).group(1)
    assert owner_client.post(undo).status_code == 302
    assert questions(app, team.study_id) == before
    assert question_id(app, team.study_id, "hours") == hours
    with app.app_context():
        events = db.session.scalars(sa.select(AuditEvent.action)).all()
    assert "question.delete" in events and "question.undo_delete" in events


def test_undoing_a_question_delete_is_refused_when_its_code_was_taken(app, team, owner_client):
    base = f"/r/studies/{team.study_id}/questions"
    owner_client.post(base, data=ADD["choice"])
    owner_client.post(f"{base}/{question_id(app, team.study_id, 'seen')}/delete")
    page = owner_client.get(base).get_data(as_text=True)
    undo = re.search(r'action="(/r/studies/\d+/undo/\d+)"', page).group(1)
    owner_client.post(base, data={**ADD["choice"], "text": "Seen again?"})
    refused = owner_client.post(undo)
    assert refused.status_code == 409
    assert "Another question has the code seen now" in refused.get_data(as_text=True)
    assert [q[2] for q in questions(app, team.study_id)] == ["Seen again?"]
    # Once the study opens, deletions can no longer be undone.
    owner_client.post(f"{base}/{question_id(app, team.study_id, 'seen')}/delete")
    set_study(app, team.study_id, state="open")
    assert owner_client.post(undo).status_code == 409


def test_viewers_cannot_see_the_delete_confirmation(app, team):
    team.client(app, "owner").post(f"/r/studies/{team.study_id}/questions", data=ADD["choice"])
    qid = question_id(app, team.study_id, "seen")
    viewer = team.client(app, "viewer")
    assert viewer.get(f"/r/studies/{team.study_id}/questions/{qid}/delete").status_code == 403
