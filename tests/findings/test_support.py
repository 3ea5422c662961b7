"""The report tests' simulated participants store what they say (tests/findings/support.py)."""

from __future__ import annotations

import sqlalchemy as sa

from survey.extensions import db
from survey.models import Participant, Trial
from tests.findings.support import Effects, simulate


def test_simulate_stores_every_answer_of_completed_participants(app, demo):
    """Simulated participants complete the demo through the service; early stoppers stay partial."""
    with app.app_context():
        simulate(demo, 4, seed=1, effects=Effects(stop_early=0.0))
        statuses = db.session.scalars(
            sa.select(Participant.status).where(Participant.study_id == demo)
        ).all()
        unanswered = db.session.scalar(
            sa.select(sa.func.count())
            .select_from(Trial)
            .join(Participant, Participant.id == Trial.participant_id)
            .where(Participant.study_id == demo, Trial.answered_at.is_(None))
        )
    assert statuses == ["completed"] * 4
    assert unanswered == 0
