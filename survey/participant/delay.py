"""The delay before a memory study's test phase: a timed distractor and a second session."""

from __future__ import annotations

import random
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from survey.block_settings import validate_block_settings
from survey.extensions import db
from survey.models import Block, Participant, Trial, UTCDateTime, utcnow

DISTRACTOR = "distractor"
LATER = "later"
# Return codes: unambiguous letters and digits (no 0/O, 1/I/L), 10 of them (50 bits), shown
# in two groups of five; typed in any case, with or without spaces and dashes.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 10
_CODE_NOISE = re.compile(r"[\s\-]+")
# A distractor answer: a whole number (a sum's result is never above 200).
_ANSWER = re.compile(r"-?\d{1,4}\Z")


@dataclass(frozen=True)
class Delay:
    """A recognise block's delay: seconds of distractor, hours until the second session."""

    distractor_s: int
    delay_hours: int


def delay_of(task: str, settings: Mapping[str, Any]) -> Delay | None:
    """Return the delay a trial's block puts before the test phase; None for none."""
    if task != "recognise":
        return None
    distractor = settings.get("distractor_s") or 0
    hours = settings.get("delay_hours") or 0
    return Delay(distractor, hours) if distractor or hours else None


def study_delay(study_id: int) -> Delay | None:
    """Return the delay before the study's recognise block; None without one."""
    block = db.session.scalar(
        sa.select(Block).where(Block.study_id == study_id, Block.task == "recognise").limit(1)
    )
    if block is None:
        return None
    return delay_of("recognise", validate_block_settings("recognise", block.settings))


def pending(participant: Participant, delay: Delay | None) -> str | None:
    """Return what still stands before the test phase: the second session, then the
    distractor; None when the participant may answer test trials.

    Simulated participants (`flask simulate-participants`) cannot wait: they go straight on,
    and their delay columns stay empty.
    """
    if delay is None or participant.is_simulated:
        return None
    if delay.delay_hours and participant.returned_at is None:
        return LATER
    if delay.distractor_s and participant.distractor_ended_at is None:
        return DISTRACTOR
    return None


def held_back(public_id: str, task: str, settings: Mapping[str, Any]) -> str | None:
    """Return what stands before a trial of this participant's (see `pending`), or None.

    Only a recognise trial with a delay costs a query. The gates only ever open (a time is set
    once, never cleared), so one that is open here stays open for the answer's write.
    """
    delay = delay_of(task, settings)
    if delay is None:
        return None
    participant = db.session.scalar(
        sa.select(Participant).where(Participant.public_id == public_id)
    )
    return None if participant is None else pending(participant, delay)


def unstamp(trial_id: int) -> None:
    """Clear the shown_at a trial page's read stamped on a trial it then did not show."""
    db.session.execute(
        sa.update(Trial.__table__)
        .where(Trial.__table__.c.id == trial_id, Trial.__table__.c.answered_at.is_(None))
        .values(shown_at=None)
    )
    db.session.commit()


# --- the distractor ---------------------------------------------------------------------------


def problem(seed: int, number: int) -> tuple[str, int]:
    """Return the participant's sum number `number` (from 0) as text, and its result."""
    rng = random.Random(f"{seed}:distractor:{number}")
    a, b = rng.randint(12, 89), rng.randint(3, 9)
    if rng.random() < 0.5:
        return f"{a} + {b}", a + b
    return f"{a} − {b}", a - b


def read_answer(raw: str | None) -> int | None:
    """Return a typed answer as a number, or None when it is not a whole number."""
    text = (raw or "").strip().replace("−", "-")
    return int(text) if _ANSWER.match(text) else None


def seconds_left(participant: Participant, delay: Delay, now: datetime | None = None) -> int:
    """Return the whole seconds the distractor still runs (its full time before it starts)."""
    if participant.distractor_started_at is None:
        return delay.distractor_s
    ends = participant.distractor_started_at + timedelta(seconds=delay.distractor_s)
    left = (ends - (now or utcnow())).total_seconds()
    return max(0, int(left + 0.999))


_P = Participant.__table__.c


def _update(*where: sa.ColumnElement, **values: Any) -> bool:
    """Run one conditional UPDATE of a participant in progress; tell whether it matched."""
    statement = sa.update(Participant.__table__).where(_P.status == "in_progress", *where)
    done = db.session.execute(statement.values(**values)).rowcount == 1
    db.session.commit()
    return done


def start_distractor(participant_id: int) -> bool:
    """Start the distractor's clock, once."""
    return _update(
        _P.id == participant_id, _P.distractor_started_at.is_(None), distractor_started_at=utcnow()
    )


def count_answer(participant: Participant, number: int, answer: int, delay: Delay) -> bool:
    """Count the answer to sum `number` while the distractor runs: once (a repeated post, or
    one for another sum than the current, counts nothing)."""
    now = utcnow()
    if participant.distractor_started_at is None or not seconds_left(participant, delay, now):
        return False
    right = answer == problem(participant.seed, number)[1]
    return _update(
        _P.id == participant.id,
        _P.distractor_answered == number,
        _P.distractor_ended_at.is_(None),
        distractor_answered=_P.distractor_answered + 1,
        distractor_correct=_P.distractor_correct + int(right),
    )


def end_distractor(participant_id: int, delay: Delay) -> bool:
    """End the distractor once its time has run, judged by the database row's start time:
    a participant cannot leave it early. Tell whether it has ended."""
    now = utcnow()
    started_by = sa.bindparam(
        "started_by", now - timedelta(seconds=delay.distractor_s), UTCDateTime()
    )
    _update(
        _P.id == participant_id,
        _P.distractor_ended_at.is_(None),
        _P.distractor_started_at <= started_by,
        distractor_ended_at=now,
    )
    ended = db.session.scalar(
        sa.select(Participant.distractor_ended_at).where(Participant.id == participant_id)
    )
    return ended is not None


# --- the second session -----------------------------------------------------------------------


def new_code() -> str:
    """Return a fresh return code."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def clean_code(raw: str | None) -> str | None:
    """Return a typed return code in its stored form, or None when it cannot be one."""
    code = _CODE_NOISE.sub("", raw or "").upper()
    if len(code) != CODE_LENGTH or any(c not in CODE_ALPHABET for c in code):
        return None
    return code


def shown_code(code: str) -> str:
    """Write a code as participants see it: two groups of five."""
    half = CODE_LENGTH // 2
    return f"{code[:half]}-{code[half:]}"


def start_waiting(participant: Participant, delay: Delay) -> None:
    """End the first session: the return code, and when the test opens (at once for a
    researcher's preview run). Done once; a repeat keeps the first code and times."""
    now = utcnow()
    hours = 0 if participant.is_preview else delay.delay_hours
    for _ in range(3):  # a clash of two random 50-bit codes is all but impossible
        try:
            _update(
                _P.id == participant.id,
                _P.waiting_since.is_(None),
                waiting_since=now,
                return_due_at=now + timedelta(hours=hours),
                return_code=new_code(),
            )
            return
        except sa.exc.IntegrityError:
            db.session.rollback()


def by_code(study_id: int, code: str) -> Participant | None:
    """Return the study's participant with this return code."""
    return db.session.scalar(
        sa.select(Participant).where(
            Participant.study_id == study_id, Participant.return_code == code
        )
    )


def come_back(participant_id: int) -> bool:
    """Record the return, once, if the test phase has opened; tell whether it is recorded."""
    now = utcnow()
    _update(
        _P.id == participant_id,
        _P.returned_at.is_(None),
        _P.return_due_at <= sa.bindparam("now", now, UTCDateTime()),
        returned_at=now,
    )
    returned = db.session.scalar(
        sa.select(Participant.returned_at).where(Participant.id == participant_id)
    )
    return returned is not None
