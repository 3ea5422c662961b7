"""Sign-in rate limiting per account and address together, counted in the LoginAttempt table."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from survey.extensions import db
from survey.models import LoginAttempt, utcnow

# Defaults; each can be changed in the app config under the same name.
LOGIN_MAX_PER_ACCOUNT = 5  # per account and address
LOGIN_MAX_PER_ADDRESS = 20
LOGIN_MAX_PER_ACCOUNT_TOTAL = 100  # per account, from addresses it has not signed in from
LOGIN_WINDOW_SECONDS = 15 * 60
# Failed attempts older than this are deleted now and then, so the table stays small.
KEEP_ATTEMPTS = timedelta(days=1)
# Successful sign-ins are kept longer: their addresses are the account's known ones.
KEEP_SUCCESSES = timedelta(days=30)


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
    attempt = LoginAttempt(email=identifier_key(identifier), address=address[:64], succeeded=False)
    db.session.add(attempt)
    db.session.commit()
    limit = _limit(attempt) if current_app.config.get("RATELIMIT_ENABLED", True) else None
    if limit is not None:
        db.session.delete(attempt)
        db.session.commit()
    return attempt, limit


def close_attempt(attempt: LoginAttempt, succeeded: bool) -> None:
    """Mark the attempt's outcome and forget old attempts; committed by the caller."""
    attempt.succeeded = succeeded
    now = utcnow()
    db.session.execute(
        sa.delete(LoginAttempt).where(
            LoginAttempt.at < now - KEEP_ATTEMPTS,
            sa.or_(LoginAttempt.succeeded.is_(False), LoginAttempt.at < now - KEEP_SUCCESSES),
        )
    )


def forget_attempt(attempt: LoginAttempt) -> None:
    """Drop an attempt that was not a failure and must not count as a sign-in either."""
    db.session.delete(attempt)


def _last_success(*conditions) -> datetime | None:
    """Return when the last successful sign-in matching the conditions was, or None."""
    return db.session.scalar(
        sa.select(sa.func.max(LoginAttempt.at)).where(LoginAttempt.succeeded.is_(True), *conditions)
    )


def _failures(since: datetime, *conditions) -> int:
    """Count failed attempts after `since` matching the conditions (this attempt included)."""
    return db.session.scalar(
        sa.select(sa.func.count()).where(
            LoginAttempt.succeeded.is_(False), LoginAttempt.at > since, *conditions
        )
    )


def _limit(attempt: LoginAttempt) -> Limit | None:
    """Return a Limit when the attempt's account from its address, its address, or (from an
    address the account has not signed in from lately) its account has failed too often."""
    window = timedelta(seconds=_setting("LOGIN_WINDOW_SECONDS", LOGIN_WINDOW_SECONDS))
    since = utcnow() - window
    key, address = attempt.email, attempt.address
    minutes = max(1, round(window.total_seconds() / 60))
    retry_after = int(window.total_seconds())
    same_account = LoginAttempt.email == key
    same_address = LoginAttempt.address == address
    # A success from this address resets this address's count for the account.
    last_here = _last_success(same_account, same_address)
    pair_since = max(since, last_here) if last_here is not None else since
    if _failures(pair_since, same_account, same_address) > _setting(
        "LOGIN_MAX_PER_ACCOUNT", LOGIN_MAX_PER_ACCOUNT
    ):
        return Limit(
            "Too many failed sign-ins for this account from your network address. "
            f"Wait {minutes} minutes and try again.",
            retry_after,
        )
    if _failures(since, same_address) > _setting("LOGIN_MAX_PER_ADDRESS", LOGIN_MAX_PER_ADDRESS):
        return Limit(
            f"Too many failed sign-ins from your network address. Wait {minutes} minutes "
            "and try again.",
            retry_after,
        )
    if last_here is None:
        last_any = _last_success(same_account)
        account_since = max(since, last_any) if last_any is not None else since
        if _failures(account_since, same_account) > _setting(
            "LOGIN_MAX_PER_ACCOUNT_TOTAL", LOGIN_MAX_PER_ACCOUNT_TOTAL
        ):
            return Limit(
                "Too many failed sign-ins for this account from many addresses. Sign in from "
                f"a network you have used before, or wait {minutes} minutes and try again.",
                retry_after,
            )
    return None
