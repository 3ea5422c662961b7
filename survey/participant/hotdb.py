"""The database connection of the participant's hot path: the trial page and the answers.

Hundreds of participants at once each answer a trial every few seconds, two requests a trial.
These requests run one or two statements each, so what surrounds a statement costs more than
the statement: the ORM session's bookkeeping, BEGIN and COMMIT round trips, the pool's
pre-ping (one more round trip per checkout). On PostgreSQL the hot path therefore has an engine
of its own, in autocommit (a read is its one statement; an answer is stored by one atomic
statement) and without pre-ping: a connection the server dropped (a restart, an idle timeout)
is found by the statement itself, and `run` then repeats it once on a fresh connection. That is
safe because every hot statement is idempotent: a read, or a claim that stores nothing for a
trial already answered. On SQLite the hot path uses the app's own engine.

One connection serves an app context (a request) and is closed when it ends (`close`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Optional, TypeVar

import sqlalchemy as sa
from flask import Flask, current_app, g
from sqlalchemy.exc import DBAPIError

from survey.config import engine_options
from survey.extensions import db

EXTENSION = "likeness_hot_engine"
_CONNECTION = "likeness_hot_connection"
_lock = threading.Lock()
T = TypeVar("T")


def engine(app: Optional[Flask] = None) -> sa.Engine:
    """Return the app's hot-path engine (made on first use)."""
    app = app or current_app._get_current_object()
    made = app.extensions.get(EXTENSION)
    if made is not None:
        return made
    with _lock:
        made = app.extensions.get(EXTENSION)
        if made is None:
            with app.app_context():
                main = db.engine
            if main.dialect.name == "postgresql":
                url = main.url.render_as_string(hide_password=False)
                options = {**engine_options(url), "pool_pre_ping": False}
                made = sa.create_engine(url, isolation_level="AUTOCOMMIT", **options)
            else:
                made = main
            app.extensions[EXTENSION] = made
    return made


def dispose(app: Flask) -> None:
    """Close the pooled connections of the app's hot-path engine, if it has its own."""
    made = app.extensions.pop(EXTENSION, None)
    if made is not None and made.dialect.name == "postgresql":
        made.dispose()


def connection() -> sa.Connection:
    """Return this app context's hot-path connection, opened on first use."""
    open_ = g.get(_CONNECTION)
    if open_ is None or open_.closed:
        open_ = engine().connect()
        setattr(g, _CONNECTION, open_)
    return open_


def close(_exc: Optional[BaseException] = None) -> None:
    """Close the app context's hot-path connection, if one was opened (a teardown)."""
    open_ = g.pop(_CONNECTION, None)
    if open_ is not None:
        open_.close()


def run(work: Callable[[sa.Connection], T]) -> T:
    """Run `work` on the hot connection; once more on a fresh one if the first was dead.

    `work` must be idempotent (see the module docstring). Any other error, or a second dead
    connection (the database is down), is raised: the app answers 503, try again.
    """
    try:
        return work(connection())
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    close()
    return work(connection())
