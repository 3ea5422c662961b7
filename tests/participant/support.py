"""Helpers of the participant tests: ways through the trial pages and reading what was stored.

Holds no tests and no fixtures (those are in tests/conftest.py and tests/participant/conftest.py).
"""

from __future__ import annotations

import sqlalchemy as sa

from survey.extensions import db
from survey.models import Participant, Response, Trial
from survey.participant.simulate import open_trial, parse_trial_form


def first_answers(form) -> dict[str, str]:
    """Answer every question of a trial form with its first choice (a study-phase Continue
    with its one value)."""
    return form.answer(lambda values: values[0])


def trial_form(client, slug: str = "demo"):
    """GET the current trial page, passing the pages between trials that come first (block
    instructions, breaks), and read its form (None when it is not a trial page)."""
    page = open_trial(client, slug)
    return parse_trial_form(page.get_data(as_text=True)) if page.status_code == 200 else None


def trial_id(form) -> int:
    """Return the id of the trial a form posts to."""
    return int(form.action.rsplit("/", 1)[1])


def answer_trials(client, n: int, slug: str = "demo") -> list[tuple[int, dict[str, str]]]:
    """Answer the next `n` trials with first choices; return (trial id, answers) for each."""
    given = []
    for _ in range(n):
        form = trial_form(client, slug)
        answers = first_answers(form)
        response = client.post(form.action, data={**answers, **form.hidden, "rt_ms": "900"})
        assert response.status_code == 303, response.get_data(as_text=True)
        given.append((trial_id(form), answers))
    return given


def participants(app) -> list[Participant]:
    """Return every participant, oldest first."""
    with app.app_context():
        return list(db.session.scalars(sa.select(Participant).order_by(Participant.id)))


def count(app, model) -> int:
    """Count the rows of a table."""
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def trial_at(app, participant_id: int, position: int) -> Trial:
    """Return a participant's trial at a position of its schedule."""
    with app.app_context():
        trial = db.session.scalar(
            sa.select(Trial).where(
                Trial.participant_id == participant_id, Trial.position == position
            )
        )
        db.session.expunge(trial)
        return trial


# The fields a trial page of each task asks.
TASK_FIELDS = {
    "match": {"same", "confidence"},
    "rate": {"scale_trust", "scale_professional"},
    "detect": {"source", "confidence"},
    "choose": {"choice"},
}


def advance_to(client, wanted: set[str]):
    """Answer trials until the current one asks exactly the `wanted` fields; return its form."""
    for _ in range(40):
        form = trial_form(client)
        assert form is not None, f"no trial asks {wanted}"
        if set(form.choices) == wanted:
            return form
        assert client.post(form.action, data=first_answers(form)).status_code == 303
    raise AssertionError(f"no trial asks {wanted}")


def responses(app, trial: int) -> dict[str, tuple[str, float | None]]:
    """Return the stored answers of a trial: measure -> (value, rt_ms)."""
    with app.app_context():
        rows = db.session.execute(
            sa.select(Response.measure, Response.value, Response.rt_ms).where(
                Response.trial_id == trial
            )
        ).all()
    return {m: (v, rt) for m, v, rt in rows}
