"""Limits on new participants, per client address and per study, counted in the database."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from survey.extensions import db
from survey.models import ParticipantStart, Study

# The limits themselves are app settings (survey/config.py, from the environment).
MINUTE = timedelta(minutes=1)

_START = ParticipantStart.__table__
_SINCE = sa.bindparam("since", type_=_START.c.at.type)
_COUNTS = sa.select(
    sa.select(sa.func.count())
    .where(
        _START.c.study_id == sa.bindparam("study_id"),
        _START.c.address_key == sa.bindparam("address_key"),
        _START.c.at > _SINCE,
    )
    .scalar_subquery(),
    sa.select(sa.func.count())
    .where(
        _START.c.study_id == sa.bindparam("study_id"),
        _START.c.at > sa.bindparam("minute_since", type_=_START.c.at.type),
    )
    .scalar_subquery(),
)
_RECORD = _START.insert()
# Starts no window counts any more are deleted by the study's next start, so the table holds
# at most a window's starts per study.
_FORGET = _START.delete().where(
    _START.c.study_id == sa.bindparam("study_id"),
    _START.c.at <= sa.bindparam("forget_before", type_=_START.c.at.type),
)


def _setting(name: str) -> int:
    """Return an integer setting of the app (its default is in survey/config.py)."""
    return int(current_app.config[name])


def address_key(address: str) -> str:
    """Return the digest a client address is counted under (an HMAC: addresses are not kept)."""
    secret = current_app.secret_key
    secret_bytes = secret.encode() if isinstance(secret, str) else bytes(secret)
    message = b"likeness-participant-start:" + address.encode("utf-8", "replace")
    return hmac.new(secret_bytes, message, hashlib.sha256).hexdigest()


def check_and_record(
    connection: sa.Connection, study_id: int, address: str, now: datetime
) -> int | None:
    """Record a new participant's start from `address`, or return the seconds to wait.

    Run under the study's row lock, in the start's transaction: a start that fails later is
    rolled back with its record.
    """
    if not current_app.config.get("RATELIMIT_ENABLED", True):
        return None
    per_address = _setting("STARTS_PER_ADDRESS")
    per_minute = _setting("STARTS_PER_MINUTE")
    window = timedelta(minutes=_setting("STARTS_WINDOW_MINUTES"))
    key = address_key(address)
    counted = {"study_id": study_id, "address_key": key}
    from_address, this_minute = connection.execute(
        _COUNTS, {**counted, "since": now - window, "minute_since": now - MINUTE}
    ).one()
    if per_address and from_address >= per_address:
        return int(window.total_seconds())
    if per_minute and this_minute >= per_minute:
        return int(MINUTE.total_seconds())
    connection.execute(_FORGET, {"study_id": study_id, "forget_before": now - max(window, MINUTE)})
    connection.execute(_RECORD, {**counted, "at": now})
    return None


def count_refusal(study_id: int) -> None:
    """Count a refused start on the study (its own short transaction), for the monitor."""
    db.session.execute(
        sa.update(Study).where(Study.id == study_id).values(starts_refused=Study.starts_refused + 1)
    )
    db.session.commit()
