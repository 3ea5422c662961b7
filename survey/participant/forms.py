"""Participant forms: consent, the answer to each kind of trial, withdrawal (the questions
after the trials are the researcher's own: survey/questions.py)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from flask_babel import gettext as _
from flask_wtf import FlaskForm
from wtforms import (
    Form,
    HiddenField,
    RadioField,
    SelectChoice,
    SubmitField,
)
from wtforms.validators import InputRequired
from wtforms.validators import Optional as OptionalValue

from survey.block_settings import MEMORY_TASKS, NAME_CHOICES
from survey.i18n import N_, translated

BINARY_KEYS = ("f", "j")
# Built-in questions and answers are catalog entries (N_), kept in English here: a question set
# is a cache key shared by every language, and the page translates its words when it renders.
CONFIDENCE = (N_("How sure are you?"), 1, 5, N_("Guessing"), N_("Certain"))


@dataclass(frozen=True)
class Question:
    """One question of a trial: its field, stored measure, text and choices."""

    name: str
    measure: str
    label: str
    # (value, label, keyboard shortcut or "")
    choices: tuple[tuple[str, str, str], ...]
    # "binary" (two big buttons), "scale" (a row of numbers with anchors), "names" (the
    # trial's names to choose from, labelled per trial) or "continue" (no choice: the page's
    # button sends the one value)
    kind: str
    low_anchor: str = ""
    high_anchor: str = ""
    # Asked only when the question named here was answered with this value ("old", "1"): the
    # answer is then required, and otherwise not stored.
    when: tuple[str, str] | None = None


def _binary(name: str, measure: str, label: str, *options: tuple[str, str]) -> Question:
    """Return a two-choice question answered with f / j."""
    choices = tuple(
        (value, text, key) for (value, text), key in zip(options, BINARY_KEYS, strict=True)
    )
    return Question(name, measure, label, choices, "binary")


def _scale(
    name: str, measure: str, label: str, low: int, high: int, low_anchor: str, high_anchor: str
) -> Question:
    """Return a numbered scale; digits are shortcuts when every point is one digit."""
    keyed = 0 <= low and high <= 9
    choices = tuple((str(v), str(v), str(v) if keyed else "") for v in range(low, high + 1))
    return Question(name, measure, label, choices, "scale", low_anchor, high_anchor)


def _confidence() -> Question:
    """Return the 1-5 confidence question of match and detect trials."""
    label, low, high, low_anchor, high_anchor = CONFIDENCE
    return _scale("confidence", "confidence", label, low, high, low_anchor, high_anchor)


# The learn block's orienting question is answered on this scale.
ORIENTING = (1, 5, N_("Not at all"), N_("Very"))


def _memory_questions(task: str, settings: dict[str, Any]) -> list[Question]:
    """Return the questions of a learn or recognise trial (confidence added by the caller)."""
    if task == "learn":
        if settings.get("orienting_question"):
            low, high, low_anchor, high_anchor = ORIENTING
            return [
                _scale(
                    "orienting",
                    "orienting",
                    settings["orienting_question"],
                    low,
                    high,
                    low_anchor,
                    high_anchor,
                )
            ]
        return [Question("seen", "seen", N_("Continue"), (("1", N_("Continue"), ""),), "continue")]
    questions = [
        _binary("old", "old", settings["question"], ("1", N_("Yes, met before")), ("0", N_("No")))
    ]
    if settings.get("name_recall"):
        # The four names differ per trial: the values are their places, 1 to 4, and the page
        # labels them with the trial's names (the export writes the name chosen).
        choices = tuple((str(k), str(k), "") for k in range(1, NAME_CHOICES + 1))
        questions.append(
            Question(
                "name",
                "name",
                N_("What is this person's name?"),
                choices,
                "names",
                when=("old", "1"),
            )
        )
    return questions


def _main_questions(task: str, settings: dict[str, Any], name: str | None = None) -> list[Question]:
    """Return a task's own questions (without confidence); `name` renames a single one."""
    if task in MEMORY_TASKS:
        return _memory_questions(task, settings)
    if task == "match":
        return [
            _binary(
                name or "same",
                "same",
                N_("Same person?"),
                ("1", N_("Same person")),
                ("0", N_("Different people")),
            )
        ]
    if task == "detect":
        return [
            _binary(
                name or "source",
                "source",
                N_("Real photograph or AI-generated?"),
                ("real", N_("Real photograph")),
                ("ai", N_("AI-generated")),
            )
        ]
    if task == "choose":
        return [
            _binary(
                name or "choice",
                "choice",
                settings["question"],
                ("left", N_("Left photo")),
                ("right", N_("Right photo")),
            )
        ]
    scales = settings["scales"][:1] if name else settings["scales"]
    return [
        _scale(
            name or f"scale_{s['key']}",
            s["key"],
            s["question"],
            s["min"],
            s["max"],
            s.get("low_anchor", ""),
            s.get("high_anchor", ""),
        )
        for s in scales
    ]


def questions_for(task: str, settings: dict[str, Any], is_attention: bool) -> tuple[Question, ...]:
    """Return the questions a trial asks; an attention check asks only the task's main one."""
    if is_attention:
        (question,) = _main_questions(task, settings, name="attention")
        return (dataclasses.replace(question, measure="attention"),)
    questions = _main_questions(task, settings)
    if task in ("match", "detect", "recognise") and settings.get("confidence", True):
        # Asked right after the yes/no answer, before a name.
        questions.insert(1, _confidence())
    return tuple(questions)


def attention_instruction(question: Question, answer: str | None) -> str:
    """Return the sentence, in the page's language, that tells which answer to give."""
    label = next((text for value, text, _key in question.choices if value == answer), answer or "")
    if question.kind == "scale":
        return _("Attention check: for this photo, choose %(answer)s.", answer=label)
    return _("Attention check: for this one, choose “%(answer)s”.", answer=translated(label))


class ParticipantForm(FlaskForm):
    """Base of the participant's forms: their token is checked by `survey.participant.csrf`.

    It comes from the browser's form key, not the session, before the view runs; the form
    itself carries no session token.
    """

    class Meta:
        csrf = False


class AnswerForm(Form):
    """Base of the answer forms: the response time measured by the page's script.

    A plain WTForms form, given the posted data by `read_answer`: its token was checked by
    `survey.participant.csrf` before the view ran, so it needs nothing of Flask-WTF (whose
    form costs a third more on every answer).
    """

    rt_ms = HiddenField()


@lru_cache(maxsize=256)
def answer_form_class(questions: tuple[Question, ...]) -> type[AnswerForm]:
    """Build (once per distinct set of questions) the form class that validates an answer."""
    fields = {
        q.name: RadioField(
            q.label,
            choices=[SelectChoice(value, text) for value, text, _ in q.choices],
            # A question asked only after some answer is checked by `read_answer`.
            # The message is the page's, in its language: `answer_error`.
            validators=[OptionalValue()] if q.when else [InputRequired()],
        )
        for q in questions
    }
    return type("AnswerForm_" + "_".join(q.name for q in questions), (AnswerForm,), fields)


def _asked(question: Question, values: Any) -> bool:
    """Tell whether a question was asked, given the answers (always, unless `when` says)."""
    return question.when is None or values.get(question.when[0]) == question.when[1]


def read_answer(questions: tuple[Question, ...], formdata: Any) -> tuple[AnswerForm, bool]:
    """Return the answer form of these questions filled from the posted data, and its verdict."""
    form = answer_form_class(questions)(formdata)
    valid = form.validate()
    for q in questions:
        if q.when and _asked(q, {n: form[n].data for n in form.data}) and not form[q.name].data:
            form[q.name].errors = [*form[q.name].errors, "required"]
            valid = False
    return form, valid


def answer_error(questions: tuple[Question, ...], form: AnswerForm) -> str:
    """Return, in the page's language, what is wrong with an answer that did not validate."""
    for q in questions:
        if q.name in form and form[q.name].errors:
            question = translated(q.label)
            if any(form[q.name].raw_data or ()):
                return _("Not a valid choice for “%(question)s”.", question=question)
            return _("Please answer “%(question)s”.", question=question)
    return _("The answer could not be read.")


def chosen(questions: tuple[Question, ...], formdata: Any) -> dict[str, str] | None:
    """Return each question's posted answer when every one is among its choices, else None.

    The verdict of `read_answer` (the first value posted must be one of the choices) without
    building the form: a valid answer, nearly every one, needs no error message.
    """
    values: dict[str, str] = {}
    for q in questions:
        if not _asked(q, values):
            continue  # not asked: whatever was posted for it is not stored
        value = formdata.get(q.name)
        if not any(value == choice for choice, _, _ in q.choices):
            return None
        values[q.name] = value
    return values


def answers(questions: tuple[Question, ...], form: AnswerForm) -> dict[str, str]:
    """Return each asked question's answer from a validated form."""
    values: dict[str, str] = {}
    for q in questions:
        if _asked(q, values):
            values[q.name] = form[q.name].data
    return values


def measures(
    questions: tuple[Question, ...], values: dict[str, str], left_source: str | None
) -> list[tuple[str, str]]:
    """Return (measure, value) pairs to store; a choice of side is stored as the source there."""
    out = []
    for q in questions:
        if q.name not in values:
            continue  # a question not asked (a name after a "no")
        value = values[q.name]
        if q.measure == "choice":
            other = "ai" if left_source == "real" else "real"
            value = left_source if value == "left" else other
        out.append((q.measure, value))
    return out


# The buttons' words are the templates' (in the page's language); these labels name the fields.
class ConsentForm(ParticipantForm):
    """Agree or decline; the token makes a double-clicked agreement start one participant."""

    token = HiddenField()
    agree = SubmitField("Agree")
    decline = SubmitField("Decline")


class WithdrawForm(ParticipantForm):
    """The confirmation of a withdrawal."""

    confirm = SubmitField("Withdraw")


class PreviewForm(FlaskForm):
    """Start a flagged preview run of a study."""

    start = SubmitField("Start a preview run")
