"""The question kinds: what the builder accepts, what a participant may answer, the defaults."""

from __future__ import annotations

import pytest
from werkzeug.datastructures import MultiDict

from survey.question_labels import describe
from survey.questions import (
    Asked,
    check_code,
    clean_spec,
    default_questions,
    legacy_questions,
    read_answers,
    spec_as_form,
)


@pytest.mark.parametrize(
    ("kind", "form", "values"),
    [
        (
            "likert",
            {"min": "0", "max": "10", "anchors": "0 = Never\n5 = Sometimes\n10 = Always"},
            {"min": 0, "max": 10, "anchors": {"0": "Never", "5": "Sometimes", "10": "Always"}},
        ),
        (
            "choice",
            {"options": "Yes\nNo\nnot_sure = Not sure"},
            {"options": [["yes", "Yes"], ["no", "No"], ["not_sure", "Not sure"]]},
        ),
        (
            "checkboxes",
            {"options": "a = Apples\nb = Pears"},
            {"options": [["a", "Apples"], ["b", "Pears"]]},
        ),
        ("number", {"min": "0", "max": "2.5"}, {"min": 0, "max": 2.5}),
        ("number", {"min": "", "max": ""}, {"min": None, "max": None}),
        ("text", {"max_length": "40"}, {"max_length": 40}),
        ("text", {"max_length": ""}, {"max_length": 200}),
    ],
)
def test_the_builder_cleans_each_kind(kind, form, values):
    spec = clean_spec(kind, form)
    assert spec.errors == {} and spec.values == values
    # What the edit form shows reads back to the same settings.
    assert clean_spec(kind, spec_as_form(kind, spec.values)).values == values


@pytest.mark.parametrize(
    ("kind", "form", "field", "message"),
    [
        (
            "likert",
            {"min": "5", "max": "5"},
            "max",
            "The highest point must be above the lowest (5).",
        ),
        ("likert", {"min": "", "max": "7"}, "min", "Give the scale's lowest point, such as 1."),
        (
            "likert",
            {"min": "one", "max": "7"},
            "min",
            "The lowest point must be a whole number; you wrote “one”.",
        ),
        ("likert", {"min": "1", "max": "30"}, "max", "A scale has at most 21 points; this has 30."),
        (
            "likert",
            {"min": "1", "max": "7", "anchors": "9 = Far"},
            "anchors",
            "Point 9 is not on the scale 1 to 7.",
        ),
        ("likert", {"min": "1", "max": "7", "anchors": "low"}, "anchors", "“low” is not an anchor"),
        ("choice", {"options": "Only one"}, "options", "Write at least two options, one per line."),
        (
            "choice",
            {"options": "Yes\nyes = Yes again"},
            "options",
            "Two options have the value “yes”",
        ),
        ("checkboxes", {"options": "bad value! = X\nb = B"}, "options", "is not an option"),
        (
            "number",
            {"min": "10", "max": "2"},
            "max",
            "The largest answer must not be below the smallest (10).",
        ),
        ("number", {"min": "ten"}, "min", "The smallest answer must be a number; you wrote “ten”."),
        (
            "text",
            {"max_length": "0"},
            "max_length",
            "The longest answer must be 1 to 2000 characters; you wrote 0.",
        ),
        ("robot", {}, "kind", "Choose a kind of question."),
    ],
)
def test_the_builder_refuses_bad_settings_in_plain_words(kind, form, field, message):
    spec = clean_spec(kind, form)
    assert spec.values == {}
    assert any(message in m for m in spec.errors[field]), spec.errors


def test_every_error_is_reported_at_once():
    spec = clean_spec("number", {"min": "x", "max": "y"})
    assert set(spec.errors) == {"min", "max"}


@pytest.mark.parametrize(
    ("code", "problem"),
    [
        ("age_band", None),
        ("Age", "a lower-case letter"),
        ("1st", "a lower-case letter"),
        ("status", "already a column of participants.csv"),
        ("gender", "Another question has the code “gender”."),
        ("x" * 33, "a lower-case letter"),
    ],
)
def test_codes_name_columns_that_do_not_clash(code, problem):
    found = check_code(code, {"gender"})
    assert (found is None) if problem is None else (problem in found)


LIKERT = Asked("trust", "likert", "Trust?", True, {"min": 1, "max": 7, "anchors": {"1": "No"}})
CHOICE = Asked(
    "gender", "choice", "Gender", False, {"options": [["woman", "Woman"], ["man", "Man"]]}
)
BOXES = Asked(
    "tools", "checkboxes", "Tools", False, {"options": [["a", "A"], ["b", "B"], ["c", "C"]]}
)
NUMBER = Asked("age", "number", "Age", False, {"min": 16, "max": 110})
TEXT = Asked("note", "text", "Note", False, {"max_length": 5})
ALL = [LIKERT, CHOICE, BOXES, NUMBER, TEXT]


def test_answers_of_every_kind_are_typed():
    form = MultiDict(
        [
            ("trust", "6"),
            ("gender", "woman"),
            ("tools", "c"),
            ("tools", "a"),
            ("age", "34"),
            ("note", " hi "),
        ]
    )
    values, errors = read_answers(ALL, form)
    assert errors == {}
    assert values == {"trust": 6, "gender": "woman", "tools": ["a", "c"], "age": 34, "note": "hi"}


def test_optional_questions_may_be_left_out_and_required_ones_not():
    values, errors = read_answers(ALL, MultiDict())
    assert values == {} and errors == {"trust": "Please answer this question."}
    required_boxes = Asked("tools", "checkboxes", "Tools", True, BOXES.spec)
    assert read_answers([required_boxes], MultiDict())[1] == {"tools": "Please tick at least one."}


@pytest.mark.parametrize(
    ("pairs", "code", "message"),
    [
        ([("trust", "8")], "trust", "Choose a point from 1 to 7."),
        ([("trust", "4"), ("gender", "robot")], "gender", "Choose one of the options shown."),
        (
            [("trust", "4"), ("tools", "a"), ("tools", "z")],
            "tools",
            "Choose among the options shown.",
        ),
        (
            [("trust", "4"), ("tools", "a"), ("tools", "a")],
            "tools",
            "Choose among the options shown.",
        ),
        ([("trust", "4"), ("age", "abc")], "age", "Enter a number; you wrote “abc”."),
        ([("trust", "4"), ("age", "7")], "age", "Enter a number from 16 to 110; you wrote 7."),
        ([("trust", "4"), ("age", "nan")], "age", "Enter a number; you wrote “nan”."),
        ([("trust", "4"), ("note", "too long")], "note", "At most 5 characters; this has 8."),
    ],
)
def test_bad_answers_are_refused_by_question(pairs, code, message):
    values, errors = read_answers(ALL, MultiDict(pairs))
    assert errors == {code: message}


def test_the_default_demographics():
    questions = {q["code"]: q for q in default_questions()}
    assert list(questions) == ["age_band", "gender", "ai_familiarity", "recognised_anyone"]
    assert not any(q["required"] for q in questions.values())
    gender = dict(questions["gender"]["spec"]["options"])
    # "Prefer not to say" is an option a participant picks, stored as such; nothing is preselected.
    assert gender["prefer_not_to_say"] == "Prefer not to say"
    assert read_answers(
        [Asked(**questions["gender"])], MultiDict({"gender": "prefer_not_to_say"})
    ) == (
        {"gender": "prefer_not_to_say"},
        {},
    )
    for q in questions.values():
        assert clean_spec(q["kind"], spec_as_form(q["kind"], q["spec"])).values == q["spec"]
        assert check_code(q["code"], set()) is None
    assert describe("likert", questions["ai_familiarity"]["spec"]) == (
        "integers 1 to 5 (1 = Not at all; 5 = Very familiar)"
    )
    # New and older studies ask the same gender question, each study its own copy.
    legacy = {q["code"]: q for q in legacy_questions()}
    assert legacy["gender"] == questions["gender"]
    questions["gender"]["spec"]["options"].append(["x", "X"])
    assert legacy["gender"] != questions["gender"]
    assert {q["code"]: q for q in default_questions()}["gender"] == legacy["gender"]


@pytest.mark.parametrize(
    ("kind", "spec", "line"),
    [
        ("likert", {"min": 1, "max": 7, "anchors": {}}, "integers 1 to 7"),
        ("choice", {"options": [["yes", "Yes"], ["no", "No"]]}, "one of yes = Yes; no = No"),
        ("checkboxes", {"options": [["a", "A"]]}, "any of a = A, several joined by '; '"),
        ("number", {"min": None, "max": None}, "any number"),
        ("number", {"min": 16, "max": None}, "a number from 16"),
        ("number", {"min": None, "max": 99.5}, "a number up to 99.5"),
        ("number", {"min": 0, "max": 10}, "a number from 0 to 10"),
        ("text", {"max_length": 200}, "free text, at most 200 characters"),
    ],
)
def test_the_allowed_values_read_the_same_on_an_english_page_and_in_the_codebook(
    app, kind, spec, line
):
    # The questions page says it in its language (English for now); the codebook in English.
    assert describe(kind, spec, english=True) == line
    with app.test_request_context("/r/studies"):
        assert describe(kind, spec) == line


def test_the_migration_keeps_the_questions_existing_studies_asked(app):
    """0011 gives a study made before it the age and gender questions its answers are stored
    under; a study that had turned the demographics off gets none."""
    from pathlib import Path

    import sqlalchemy as sa
    from flask_migrate import downgrade, upgrade

    from survey.extensions import db
    from survey.models import Study, StudyQuestion

    migrations = str(Path(__file__).resolve().parent.parent / "migrations")
    with app.app_context():
        db.session.remove()
        downgrade(directory=migrations, revision="0006_report_charts")
        with db.engine.begin() as conn:
            for slug, settings in (("asks", "{}"), ("silent", '{"demographics": false}')):
                conn.execute(
                    sa.text(
                        "INSERT INTO study (slug, name, title, description, public_summary, "
                        "state, consent_text, instructions_text, debrief_text, completion_code, "
                        "completion_url, n_lists, assign_by, settings, participants_started, "
                        "starts_refused, created_at) VALUES (:slug, 'n', 't', '', '', 'open', "
                        "'', '', '', '', '', 2, 'started', :settings, 0, 0, CURRENT_TIMESTAMP)"
                    ),
                    {"slug": slug, "settings": settings},
                )
        upgrade(directory=migrations)
        rows = {
            slug: [
                {f: getattr(q, f) for f in ("code", "kind", "text", "required", "spec")}
                for q in db.session.scalars(
                    sa.select(StudyQuestion)
                    .join(Study)
                    .where(Study.slug == slug)
                    .order_by(StudyQuestion.position)
                )
            ]
            for slug in ("asks", "silent")
        }
    assert rows == {"asks": legacy_questions(), "silent": []}
