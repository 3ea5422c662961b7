"""The questions page with the researcher's questions: every kind stored, refused, exported."""

from __future__ import annotations

import csv
import io
import json

import sqlalchemy as sa

from survey import exports
from survey.extensions import db
from survey.models import StudyQuestion
from survey.participant.simulate import agree
from tests.helpers import DEMO_TRIALS
from tests.participant.support import answer_trials, participants

QUESTIONS = [
    (
        "trust_ai",
        "likert",
        "Would you trust an AI headshot?",
        True,
        {"min": 0, "max": 6, "anchors": {"0": "Never", "6": "Always"}},
    ),
    (
        "gender",
        "choice",
        "Your gender",
        False,
        {
            "options": [
                ["woman", "Woman"],
                ["man", "Man"],
                ["prefer_not_to_say", "Prefer not to say"],
            ]
        },
    ),
    (
        "tools",
        "checkboxes",
        "Which tools have you used?",
        False,
        {"options": [["midjourney", "Midjourney"], ["dalle", "DALL-E"], ["none", "None"]]},
    ),
    ("age", "number", "Your age in years", False, {"min": 18, "max": 99}),
    ("comment", "text", "Anything else?", False, {"max_length": 30}),
]


def use_questions(app, study_id: int) -> None:
    """Replace the study's questions with one of each kind."""
    with app.app_context():
        db.session.execute(sa.delete(StudyQuestion).where(StudyQuestion.study_id == study_id))
        for position, (code, kind, text, required, spec) in enumerate(QUESTIONS, start=1):
            db.session.add(
                StudyQuestion(
                    study_id=study_id,
                    position=position,
                    code=code,
                    kind=kind,
                    text=text,
                    required=required,
                    spec=spec,
                )
            )
        db.session.commit()


def finish_trials(client) -> None:
    agree(client, "demo")
    answer_trials(client, DEMO_TRIALS)


def test_a_new_study_asks_the_default_demographics(app, client, demo):
    finish_trials(client)
    page = client.get("/s/demo/questions").get_data(as_text=True)
    for text in ("Your age", "Your gender", "AI tools", "recognise any of the people"):
        assert text in page
    assert 'value="prefer_not_to_say"' in page
    # Nothing is chosen for the participant.
    assert "checked" not in page
    assert 'name="skip"' in page


def test_every_kind_is_stored_typed(app, client, demo):
    use_questions(app, demo)
    finish_trials(client)
    page = client.get("/s/demo/questions").get_data(as_text=True)
    assert "(required)" in page and 'name="skip"' not in page
    response = client.post(
        "/s/demo/questions",
        data={
            "trust_ai": "5",
            "gender": "prefer_not_to_say",
            "tools": ["dalle", "midjourney"],
            "age": "41",
            "comment": "=cmd|' /C calc'!A0",
        },
    )
    assert response.status_code == 303 and response.headers["Location"].endswith("/s/demo/done")
    assert participants(app)[0].demographics == {
        "trust_ai": 5,
        "gender": "prefer_not_to_say",
        "tools": ["midjourney", "dalle"],
        "age": 41,
        "comment": "=cmd|' /C calc'!A0",
    }
    with app.app_context():
        text = "".join(exports.participants_csv(demo))
        book = json.loads(exports.codebook_json(demo))
    (row,) = list(csv.DictReader(io.StringIO(text)))
    header = text.splitlines()[0].split(",")
    # The contract's columns stay first; the questions follow in the researcher's order.
    assert header[:2] == ["participant", "list"] and header[-5:] == [q[0] for q in QUESTIONS]
    assert row["trust_ai"] == "5" and row["tools"] == "midjourney; dalle" and row["age"] == "41"
    assert row["gender"] == "prefer_not_to_say"
    assert row["comment"].startswith("'=")  # a formula is not evaluated by a spreadsheet
    columns = {c["name"]: c for c in book["columns"] if c["file"] == "participants.csv"}
    assert columns["trust_ai"]["type"] == "integer"
    assert columns["trust_ai"]["values"] == "integers 0 to 6 (0 = Never; 6 = Always)"
    assert "“Would you trust an AI headshot?”" in columns["trust_ai"]["description"]
    assert columns["tools"]["values"].startswith("any of midjourney = Midjourney; dalle = DALL-E")
    assert (
        columns["age"]["type"] == "number" and "a number from 18 to 99" in columns["age"]["values"]
    )
    assert "at most 30 characters" in columns["comment"]["values"]
    assert [q["code"] for q in book["questions"]] == [q[0] for q in QUESTIONS]
    assert book["questions"][0]["anchors"] == {"0": "Never", "6": "Always"}


def test_bad_answers_get_errors_by_their_questions_and_store_nothing(app, client, demo):
    use_questions(app, demo)
    finish_trials(client)
    response = client.post(
        "/s/demo/questions",
        data={"gender": "woman", "tools": "robots", "age": "12", "comment": "x" * 31},
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    for code, message in (
        ("trust_ai", "Please answer this question."),
        ("tools", "Choose among the options shown."),
        ("age", "Enter a number from 18 to 99; you wrote 12."),
        ("comment", "At most 30 characters; this has 31."),
    ):
        assert f'id="{code}-error">{message}' in page
    # The valid answer is shown again, and nothing is stored.
    assert 'value="woman" checked' in page
    assert participants(app)[0].demographics == {}
    # A required question cannot be skipped.
    skipped = client.post("/s/demo/questions", data={"skip": "1"})
    assert skipped.status_code == 400 and participants(app)[0].demographics == {}


def test_a_study_without_questions_goes_to_the_debrief(app, client, demo):
    with app.app_context():
        db.session.execute(sa.delete(StudyQuestion).where(StudyQuestion.study_id == demo))
        db.session.commit()
    finish_trials(client)
    assert client.get("/s/demo/trial").headers["Location"].endswith("/s/demo/done")
    assert client.get("/s/demo/questions").headers["Location"].endswith("/s/demo/done")
