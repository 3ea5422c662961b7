"""The live monitor's figures, each counted by the database (GROUP BY, LIMIT), never in Python
over all rows, so the page stays fast with thousands of participants."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so

from survey.extensions import db
from survey.models import (
    PARTICIPANT_STATUSES,
    Block,
    Participant,
    Response,
    Study,
    Trial,
    list_label,
)

PAGE_SIZE = 50
RECENT_ANSWERS = 20
RATE_WINDOW = timedelta(minutes=10)
# Opaque ids are shown shortened: enough to tell participants apart, matching the exports' start.
SHORT_ID = 8  # the lookup accepts this short form (survey.researcher.service.SHORT_ID)


def _duration_seconds() -> sa.ColumnElement[float]:
    """Return completed_at - started_at in seconds, in the dialect's own arithmetic."""
    if db.engine.dialect.name == "postgresql":
        return sa.extract("epoch", Participant.completed_at - Participant.started_at)
    return (
        sa.func.julianday(Participant.completed_at) - sa.func.julianday(Participant.started_at)
    ) * 86400.0


def _counted(
    study_id: int, preview: bool = False, simulated: bool | None = False
) -> list[sa.ColumnElement[bool]]:
    """Return the conditions selecting a study's participants: real ones, preview runs, or
    simulated ones (`simulated` None: real and simulated alike)."""
    where = [Participant.study_id == study_id, Participant.is_preview.is_(preview)]
    if simulated is not None and not preview:
        where.append(Participant.is_simulated.is_(simulated))
    return where


def status_counts(study: Study, preview: bool = False, simulated: bool = False) -> dict[str, Any]:
    """Count participants per list and status: started (all), in progress, completed, withdrawn,
    expired."""
    rows = db.session.execute(
        sa.select(Participant.list_index, Participant.status, sa.func.count())
        .where(*_counted(study.id, preview, simulated))
        .group_by(Participant.list_index, Participant.status)
    ).all()
    n_lists = max([study.n_lists] + [index + 1 for index, _status, _n in rows])
    empty = {"started": 0, **{status: 0 for status in PARTICIPANT_STATUSES}}
    lists = [{"list": list_label(i), **empty} for i in range(n_lists)]
    total = dict(empty)
    for index, status, n in rows:
        for counts in (lists[index], total):
            counts[status] += n
            counts["started"] += n
    return {"total": total, "lists": lists}


def condition_counts(study: Study) -> list[dict[str, Any]]:
    """Count trials per task and condition: scheduled, answered, and participants shown them.

    Practice and attention-check trials are left out: they are not data.
    """
    rows = db.session.execute(
        sa.select(
            Trial.task,
            Trial.condition,
            sa.func.count(Trial.id),
            sa.func.count(Trial.answered_at),
            sa.func.count(sa.distinct(Trial.participant_id)),
        )
        .join(Participant, Participant.id == Trial.participant_id)
        .where(*_counted(study.id), Trial.is_practice.is_(False), Trial.is_attention.is_(False))
        .group_by(Trial.task, Trial.condition)
        .order_by(Trial.task, Trial.condition)
    ).all()
    return [
        {
            "task": task,
            "condition": condition or "",
            "scheduled": scheduled,
            "answered": answered,
            "participants": people,
        }
        for task, condition, scheduled, answered, people in rows
    ]


def median_completion_seconds(study: Study) -> float | None:
    """Return the median time from start to completion of completed participants."""
    duration = _duration_seconds().label("duration")
    completed = [
        *_counted(study.id),
        Participant.status == "completed",
        Participant.completed_at.is_not(None),
    ]
    n = db.session.scalar(sa.select(sa.func.count()).where(*completed))
    if not n:
        return None
    # The middle one (odd n) or the middle two (even n), found by the database's sort.
    middle = db.session.scalars(
        sa.select(duration)
        .where(*completed)
        .order_by(duration)
        .offset((n - 1) // 2)
        .limit(1 if n % 2 else 2)
    ).all()
    return sum(float(v) for v in middle) / len(middle)


def attention_failures(study: Study) -> dict[str, int]:
    """Count answered attention checks, failed ones, and participants who failed at least one."""
    failed = Response.value != Trial.attention_answer
    row = db.session.execute(
        sa.select(
            sa.func.count(Response.id),
            sa.func.count(sa.case((failed, Response.id))),
            sa.func.count(sa.distinct(sa.case((failed, Response.participant_id)))),
        )
        .select_from(Response)
        .join(Trial, Trial.id == Response.trial_id)
        .join(Participant, Participant.id == Response.participant_id)
        .where(*_counted(study.id), Trial.is_attention.is_(True), Response.measure == "attention")
    ).one()
    return {"answered": row[0], "failed": row[1], "participants_failing": row[2]}


def answers_per_minute(study: Study, now: datetime) -> float:
    """Return the trials answered per minute over the last ten minutes."""
    n = db.session.scalar(
        sa.select(sa.func.count(Trial.id))
        .join(Participant, Participant.id == Trial.participant_id)
        .where(*_counted(study.id), Trial.answered_at >= now - RATE_WINDOW)
    )
    return n / (RATE_WINDOW.total_seconds() / 60)


def recent_answers(study: Study, limit: int = RECENT_ANSWERS) -> list[dict[str, Any]]:
    """Return the last answers to arrive: time, shortened participant id, trial and measure.

    Newest first by id, which follows arrival and walks the primary key's index backwards.
    """
    rows = db.session.execute(
        sa.select(
            Response.created_at, Participant.public_id, Trial.position, Block.name, Response.measure
        )
        .join(Trial, Trial.id == Response.trial_id)
        .join(Participant, Participant.id == Response.participant_id)
        .join(Block, Block.id == Trial.block_id)
        .where(*_counted(study.id))
        .order_by(Response.id.desc())
        .limit(limit)
    ).all()
    return [
        {
            "at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "participant": public_id[:SHORT_ID],
            "trial": position,
            "block": block,
            "measure": measure,
        }
        for at, public_id, position, block, measure in rows
    ]


@dataclass(frozen=True)
class ParticipantPage:
    """One page of the participant table."""

    rows: list[dict[str, Any]]
    page: int
    pages: int
    total: int


def participant_page(
    study: Study, page: int, *, preview: bool = False, status: str | None = None
) -> ParticipantPage:
    """Return one page of participants (real and simulated, or preview runs), newest first,
    with their answered trial counts."""
    where = _counted(study.id, preview, simulated=None)
    if status in PARTICIPANT_STATUSES:
        where.append(Participant.status == status)
    total = db.session.scalar(sa.select(sa.func.count()).where(*where))
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, page), pages)
    trial = so.aliased(Trial)
    answered = (
        sa.select(sa.func.count(trial.id))
        .where(trial.participant_id == Participant.id, trial.answered_at.is_not(None))
        .scalar_subquery()
    )
    scheduled = (
        sa.select(sa.func.count(trial.id))
        .where(trial.participant_id == Participant.id)
        .scalar_subquery()
    )
    rows = db.session.execute(
        sa.select(Participant, answered, scheduled)
        .where(*where)
        .order_by(Participant.started_at.desc(), Participant.id.desc())
        .offset((page - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE)
    ).all()
    return ParticipantPage(
        rows=[
            {
                "participant": p.public_id[:SHORT_ID],
                "list": list_label(p.list_index),
                "status": p.status,
                "started_at": p.started_at,
                "completed_at": p.completed_at,
                "duration_s": (p.completed_at - p.started_at).total_seconds()
                if p.completed_at
                else None,
                "answered": n_answered,
                "scheduled": n_scheduled,
                "device": p.device or "",
                "source": p.source,
                "simulated": p.is_simulated,
                "preview": p.is_preview,
                # Between a memory study's two sessions: when the test opens; or back.
                "returns_at": p.return_due_at if p.returned_at is None else None,
                "returned": p.returned_at is not None,
            }
            for p, n_answered, n_scheduled in rows
        ],
        page=page,
        pages=pages,
        total=total,
    )


def second_sessions(study: Study, now: datetime) -> dict[str, int] | None:
    """Count a memory study's real participants between its two sessions: waiting for the test
    to open, free to return now, and come back; None when the study has no second session."""
    from survey.exports.tables import has_memory_delay

    if not has_memory_delay(study.id):
        return None
    between = sa.and_(
        Participant.status == "in_progress",
        Participant.waiting_since.is_not(None),
        Participant.returned_at.is_(None),
    )
    row = db.session.execute(
        sa.select(
            sa.func.count().filter(between, Participant.return_due_at > now),
            sa.func.count().filter(between, Participant.return_due_at <= now),
            sa.func.count().filter(Participant.returned_at.is_not(None)),
        ).where(*_counted(study.id))
    ).one()
    return {"waiting": row[0], "may_return": row[1], "returned": row[2]}


def summary(study: Study, now: datetime) -> dict[str, Any]:
    """Return every live figure of the monitor as JSON-ready data."""
    return {
        "participants": status_counts(study),
        # New participants refused by the start limits: a script, or a crowd behind one address.
        "starts_refused": study.starts_refused,
        "previews": status_counts(study, preview=True)["total"],
        # Started by flask simulate-participants: not people, counted apart.
        "simulated": status_counts(study, simulated=True)["total"],
        "conditions": condition_counts(study),
        # A memory study's second session: who waits for it, may come back, came back.
        "second_session": second_sessions(study, now),
        "median_completion_s": median_completion_seconds(study),
        "attention": attention_failures(study),
        "answers_per_minute": round(answers_per_minute(study, now), 2),
        "recent_answers": recent_answers(study),
        "at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
