"""Helpers for the participant tests: a quick demo study and ways through the trial pages.

Holds no tests. The demo is seeded by tests/helpers.py's `seed_quick_demo`.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from survey.extensions import db
from survey.models import Participant, Study, Trial
from survey.participant.simulate import parse_trial_form
from tests.helpers import seed_quick_demo


def first_answers(form) -> dict[str, str]:
    """Answer every question of a trial form with its first choice."""
    return {name: values[0] for name, values in form.choices.items()}


def trial_form(client, slug: str = "demo"):
    """GET the current trial page and read its form (None when it is not a trial page)."""
    page = client.get(f"/s/{slug}/trial")
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


def set_study(app, study_id: int, **values) -> None:
    """Change columns of a study."""
    with app.app_context():
        db.session.execute(sa.update(Study).where(Study.id == study_id).values(**values))
        db.session.commit()


@pytest.fixture
def demo(app, monkeypatch):
    """The demo study, seeded quickly (in place of conftest's full seed); returns its id.

    Test modules take it by importing it by name.
    """
    return seed_quick_demo(app, monkeypatch)


@pytest.fixture
def lookups(monkeypatch) -> list[int]:
    """Count the answers that read their trial from the database (the long way round)."""
    from survey.participant import service

    calls: list[int] = []
    original = service.answer_target

    def counted(slug, public_id, trial_id):
        calls.append(trial_id)
        return original(slug, public_id, trial_id)

    monkeypatch.setattr(service, "answer_target", counted)
    return calls


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
