"""The questions of learn and recognise trials and how their answers are read."""

from __future__ import annotations

from werkzeug.datastructures import MultiDict

from survey.block_settings import validate_block_settings
from survey.participant import forms


def questions(task: str, **settings) -> tuple[forms.Question, ...]:
    return forms.questions_for(task, validate_block_settings(task, settings), False)


def test_learn_asks_the_orienting_question_or_only_continue():
    (seen,) = questions("learn")
    assert (seen.name, seen.kind, seen.choices) == ("seen", "continue", (("1", "Continue", ""),))
    (orienting,) = questions("learn", orienting_question="How friendly?")
    assert (orienting.measure, orienting.label, orienting.kind) == (
        "orienting",
        "How friendly?",
        "scale",
    )
    assert [v for v, _, _ in orienting.choices] == ["1", "2", "3", "4", "5"]


def test_recognise_asks_old_then_confidence_then_the_name_after_a_yes():
    old, confidence, name = questions("recognise", name_recall=True)
    assert (old.measure, old.label) == ("old", "Have you met this person before?")
    assert [v for v, _, _ in old.choices] == ["1", "0"]
    assert confidence.measure == "confidence"
    assert (name.kind, name.when, [v for v, _, _ in name.choices]) == (
        "names",
        ("old", "1"),
        ["1", "2", "3", "4"],
    )
    assert [q.measure for q in questions("recognise", confidence=False)] == ["old"]


def test_a_name_is_needed_after_a_yes_and_not_stored_after_a_no():
    asked = questions("recognise", name_recall=True)
    yes = {"old": "1", "confidence": "4", "name": "3"}
    assert forms.chosen(asked, yes) == yes
    assert forms.chosen(asked, {"old": "1", "confidence": "4"}) is None
    assert forms.chosen(asked, {"old": "1", "confidence": "4", "name": "5"}) is None
    # After a no the name is not asked: anything sent for it is dropped.
    no = forms.chosen(asked, {"old": "0", "confidence": "2", "name": "1"})
    assert no == {"old": "0", "confidence": "2"}
    assert forms.measures(asked, no, None) == [("old", "0"), ("confidence", "2")]

    form, valid = forms.read_answer(asked, MultiDict({"old": "1", "confidence": "4"}))
    assert not valid
    assert forms.answer_error(asked, form) == "Please answer “What is this person's name?”."
    form, valid = forms.read_answer(asked, MultiDict({"old": "0", "confidence": "4"}))
    assert valid and forms.answers(asked, form) == {"old": "0", "confidence": "4"}
    form, valid = forms.read_answer(asked, MultiDict(yes))
    assert valid and forms.measures(asked, forms.answers(asked, form), None)[-1] == ("name", "3")


def test_continue_needs_its_one_value():
    asked = questions("learn")
    assert forms.chosen(asked, {"seen": "1"}) == {"seen": "1"}
    assert forms.chosen(asked, {}) is None
    assert forms.chosen(asked, {"seen": "2"}) is None
