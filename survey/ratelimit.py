"""Sign-in rate limiting per account and per address, counted in the LoginAttempt table.

Counting in the database (not in a worker's memory) makes the limit hold across gunicorn
workers and machines. Only failed attempts count; a success resets the account's count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from survey.extensions import db
from survey.models import LoginAttempt, utcnow

# Defaults; each can be changed in the app config under the same name.
LOGIN_MAX_PER_ACCOUNT = 5
LOGIN_MAX_PER_ADDRESS = 20
LOGIN_WINDOW_SECONDS = 15 * 60
# Attempts older than this are deleted now and then, so the table stays small.
KEEP_ATTEMPTS = timedelta(days=1)


@dataclass(frozen=True)
class Limit:
    """Why sign-in is refused for now, and for how long at most."""

    message: str
    retry_after: int


def _setting(name: str, default: int) -> int:
    """Return an integer setting from the app config, else the default."""
    return int(current_app.config.get(name, default))


def identifier_key(identifier: str) -> str:
    """Return the account key attempts are counted under (case and spaces ignored)."""
    return identifier.strip().lower()[:254]


def open_attempt(identifier: str, address: str) -> tuple[LoginAttempt, Limit | None]:
    """Record a sign-in attempt (as failed until `close_attempt`), commit it, then check it.

    Recording before counting makes a burst of simultaneous attempts see each other: each
    counts itself and every attempt committed before it, so at most the limit's number of
    them get as far as the password check. A refused attempt is not kept.
    """
    attempt = LoginAttempt(
        email=identifier_key(identifier), address=address[:64], succeeded=False
    )
    db.session.add(attempt)
    db.session.commit()
    limit = _limit(attempt) if current_app.config.get("RATELIMIT_ENABLED", True) else None
    if limit is not None:
        db.session.delete(attempt)
        db.session.commit()
    return attempt, limit


def close_attempt(attempt: LoginAttempt, succeeded: bool) -> None:
    """Mark the attempt's outcome and forget attempts older than a day; committed by the caller."""
    attempt.succeeded = succeeded
    db.session.execute(sa.delete(LoginAttempt).where(LoginAttempt.at < utcnow() - KEEP_ATTEMPTS))


def _limit(attempt: LoginAttempt) -> Limit | None:
    """Return a Limit when the attempt's account or address has failed too often lately."""
    window = timedelta(seconds=_setting("LOGIN_WINDOW_SECONDS", LOGIN_WINDOW_SECONDS))
    since = utcnow() - window
    key, address = attempt.email, attempt.address
    last_success = db.session.scalar(
        sa.select(sa.func.max(LoginAttempt.at)).where(
            LoginAttempt.email == key, LoginAttempt.succeeded.is_(True)
        )
    )
    account_since = max(since, last_success) if last_success is not None else since
    minutes = max(1, round(window.total_seconds() / 60))
    # Both counts include this attempt (recorded as failed until it succeeds).
    account_failures = db.session.scalar(
        sa.select(sa.func.count()).where(
            LoginAttempt.email == key,
            LoginAttempt.succeeded.is_(False),
            LoginAttempt.at > account_since,
        )
    )
    if account_failures > _setting("LOGIN_MAX_PER_ACCOUNT", LOGIN_MAX_PER_ACCOUNT):
        return Limit(
            f"Too many failed sign-ins for this account. Wait {minutes} minutes and try again.",
            int(window.total_seconds()),
        )
    address_failures = db.session.scalar(
        sa.select(sa.func.count()).where(
            LoginAttempt.address == address,
            LoginAttempt.succeeded.is_(False),
            LoginAttempt.at > since,
        )
    )
    if address_failures > _setting("LOGIN_MAX_PER_ADDRESS", LOGIN_MAX_PER_ADDRESS):
        return Limit(
            f"Too many failed sign-ins from your network address. Wait {minutes} minutes "
            "and try again.",
            int(window.total_seconds()),
        )
    return None
