"""Withdrawal: it cannot race the last answer."""

from __future__ import annotations

import threading
import time

import sqlalchemy as sa

from survey.extensions import db
from survey.models import Participant, Response, Study, Trial
from survey.participant import service


def _almost_done(app, study_id: int, n: int) -> list[tuple[str, int]]:
    """Start n participants and answer all but their last trial; return (public id, last trial)."""
    out = []
    with app.app_context():
        study = db.session.get(Study, study_id)
        for _ in range(n):
            participant = service.start_participant(study, device="desktop")
            public_id, pid = participant.public_id, participant.id
            trials = db.session.scalars(sa.select(Trial).where(Trial.participant_id == pid)
                                        .order_by(Trial.position)).all()
            trial_ids = [t.id for t in trials]
            for trial_id in trial_ids[:-1]:
                target = service.answer_target("demo", public_id, trial_id)
                measures = [(name, "1") for name in _measures(target)]
                assert service.store_answer(target, measures, 900.0) == service.STORED
            out.append((public_id, trial_ids[-1]))
            study = db.session.get(Study, study_id)
    return out


def _measures(target) -> list[str]:
    """The measures of an answer to a trial (the routes validate values; the service stores them)."""
    if target.is_attention:
        return ["attention"]
    if target.task == "rate":
        return [scale["key"] for scale in target.settings["scales"]]
    if target.task == "match":
        return ["same", "confidence"]
    if target.task == "detect":
        return ["source", "confidence"]
    return ["choice"]


def test_a_withdrawal_racing_the_last_answer_never_leaves_a_completed_withdrawal(app, demo):
    """Real threads: the last answer and the withdrawal at once, in every order."""
    rounds = _almost_done(app, demo, 8)
    errors: list[BaseException] = []

    def answer(public_id: str, trial_id: int, barrier: threading.Barrier) -> None:
        with app.app_context():
            target = service.answer_target("demo", public_id, trial_id)
            measures = [(name, "1") for name in _measures(target)]
            barrier.wait()
            try:
                service.store_answer(target, measures, 900.0)
            except BaseException as exc:  # noqa: BLE001 (reported below)
                errors.append(exc)

    def withdraw(public_id: str, barrier: threading.Barrier, delay: float) -> None:
        with app.app_context():
            # Read before the answer commits, as the withdraw route reads it.
            participant = service.find_participant(demo, public_id)
            barrier.wait()
            time.sleep(delay)
            try:
                service.withdraw(participant)
            except BaseException as exc:  # noqa: BLE001 (reported below)
                errors.append(exc)

    for index, (public_id, trial_id) in enumerate(rounds):
        barrier = threading.Barrier(2)
        delay = (0.0, 0.02, 0.1, 0.3)[index % 4]
        threads = [threading.Thread(target=answer, args=(public_id, trial_id, barrier)),
                   threading.Thread(target=withdraw, args=(public_id, barrier, delay))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert errors == []
    with app.app_context():
        people = db.session.scalars(sa.select(Participant).where(
            Participant.public_id.in_([p for p, _ in rounds]))).all()
        assert [(p.status, p.completed_at) for p in people] == [("withdrawn", None)] * len(rounds)
        ids = [p.id for p in people]
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Response)
                                 .where(Response.participant_id.in_(ids))) == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Trial)
                                 .where(Trial.participant_id.in_(ids))) == 0

