"""The database access of the participant's hot path: the trial page, the answers, and the
one read that starts each page around the trials.

Hundreds of participants at once each answer a trial every few seconds, two requests a trial,
and each of these requests runs one or two statements. What surrounds a statement then costs
more than the statement: the ORM session's bookkeeping, SQLAlchemy's execution context and
result objects, BEGIN and COMMIT round trips, the pool's pre-ping (a round trip per checkout).

On PostgreSQL the hot path therefore runs its statements (built once with SQLAlchemy Core and
compiled once to SQL) straight on psycopg, with a pool of its own (psycopg_pool) in autocommit:
a read is its one statement, and an answer is stored by one atomic statement. There is no
pre-ping: a connection the server dropped (a restart, an idle timeout) is found by the
statement itself, and `rows` tests the pool's idle connections (a restarted server dropped
them all) and repeats the statement once on a fresh connection. That is safe
because every hot statement is idempotent: a read, or a claim that stores nothing for a trial
already answered. Errors are raised as SQLAlchemy's exceptions, so the app answers them as it
answers any other database error (a 503 "try again" page when the database is down).

On SQLite the hot path uses the app's own engine, one connection per app context.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import Flask, current_app, g
from sqlalchemy.exc import DBAPIError

from survey.extensions import db

EXTENSION = "likeness_hot_path"
_CONNECTION = "likeness_hot_connection"
_CURSOR = "likeness_hot_cursor"
_lock = threading.Lock()
T = TypeVar("T")


class _Postgres:
    """psycopg's own pool and the hot statements compiled to SQL for it."""

    def __init__(self, engine: sa.Engine, options: dict[str, Any]) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        self.psycopg = psycopg
        self.dialect = engine.dialect
        conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.pool = ConnectionPool(
            conninfo,
            kwargs={"autocommit": True},
            min_size=0,
            # As many as the app's own pool may open (SQLALCHEMY_ENGINE_OPTIONS).
            max_size=options["pool_size"] + options["max_overflow"],
            # A free connection is waited for this long: longer than a quick restart of the
            # server takes (such blips cost participants a moment, not an error page), short
            # enough that in an outage they soon get the "try again" page (503).
            timeout=3,
            max_idle=600,
            max_lifetime=1800,
            num_workers=1,
            open=True,
        )
        self._sql: dict[sa.Executable, tuple[str, dict[str, Any]]] = {}

    def sql(self, statement: sa.Executable) -> tuple[str, dict[str, Any]]:
        """Return a statement's SQL and its parameters' defaults (compiled once)."""
        known = self._sql.get(statement)
        if known is None:
            compiled = statement.compile(dialect=self.dialect)
            known = self._sql[statement] = (str(compiled), dict(compiled.params))
        return known

    def execute(self, connection: Any, statement: sa.Executable, params: Mapping[str, Any]):
        """Run one statement that returns rows; return them as tuples.

        Errors are raised as SQLAlchemy's exceptions. (Every hot statement returns rows: the
        cursor's description, which builds a column object per column, is never needed.)
        """
        sql, defaults = self.sql(statement)
        values = {**defaults, **params}
        try:
            # One cursor per pooled connection, kept on it and reused: making a cursor costs
            # a fifth of running a hot statement. (A connection serves one request at a time.)
            cursor = getattr(connection, _CURSOR, None)
            if cursor is None or cursor.closed:
                cursor = connection.cursor()
                setattr(connection, _CURSOR, cursor)
            return cursor.execute(sql, values).fetchall()
        except self.psycopg.Error as exc:
            dropped = connection.closed or connection.broken
            raise DBAPIError.instance(
                sql,
                values,
                exc,
                self.psycopg.Error,
                connection_invalidated=dropped,
                dialect=self.dialect,
            ) from exc

    def take(self) -> Any:
        """Take a connection from the pool; a database that cannot be reached is an error."""
        try:
            return self.pool.getconn()
        except self.psycopg.Error as exc:  # the pool's timeout, or a failed connection
            raise DBAPIError.instance(
                "-- connect", {}, exc, self.psycopg.Error, dialect=self.dialect
            ) from exc

    def close(self) -> None:
        """Close the pool and its connections."""
        self.pool.close()


def _hot() -> _Postgres | None:
    """Return the app's PostgreSQL hot path, or None on SQLite (made on first use)."""
    app = current_app
    if EXTENSION in app.extensions:
        return app.extensions[EXTENSION]
    with _lock:
        if EXTENSION not in app.extensions:
            engine = db.engine
            app.extensions[EXTENSION] = (
                _Postgres(engine, app.config["SQLALCHEMY_ENGINE_OPTIONS"])
                if engine.dialect.name == "postgresql"
                else None
            )
    return app.extensions[EXTENSION]


def dispose(app: Flask) -> None:
    """Close the app's hot-path pool, if it has one (tests make many apps)."""
    made = app.extensions.pop(EXTENSION, None)
    if made is not None:
        made.close()


def connection() -> Any:
    """Return this app context's hot-path connection, taken on first use.

    A psycopg connection on PostgreSQL, an SQLAlchemy connection elsewhere.
    """
    open_ = g.get(_CONNECTION)
    if open_ is None or open_.closed:
        hot = _hot()
        open_ = hot.take() if hot is not None else db.engine.connect()
        setattr(g, _CONNECTION, open_)
    return open_


def close(_exc: BaseException | None = None) -> None:
    """Give back the app context's hot-path connection, if one was taken (a teardown)."""
    open_ = g.pop(_CONNECTION, None)
    if open_ is None:
        return
    hot = _hot()
    if hot is not None:
        hot.pool.putconn(open_)  # a broken connection is discarded by the pool
    else:
        open_.close()


def _once_more(work: Callable[[Any], T]) -> T:
    """Run `work` on the hot connection; once more on a fresh one if the first was dropped."""
    try:
        return work(connection())
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    close()
    hot = _hot()
    if hot is not None:
        # A dropped connection usually means the server restarted and dropped all of them:
        # test the idle ones now (one round trip each) so that no other request meets one.
        hot.pool.check()
    return work(connection())


def is_postgres() -> bool:
    """Tell whether the hot path runs on PostgreSQL (one-statement writes)."""
    return _hot() is not None


def rows(statement: sa.Executable, params: Mapping[str, Any]) -> list[Any]:
    """Run one idempotent statement in autocommit (SQLite: as its own transaction)."""
    hot = _hot()
    if hot is not None:
        return _once_more(lambda conn: hot.execute(conn, statement, params))

    def run(conn: sa.Connection) -> list[Any]:
        result = conn.execute(statement, params)
        found = result.all() if result.returns_rows else []
        conn.commit()
        return found

    return _once_more(run)


def transaction(work: Callable[[sa.Connection], T]) -> T:
    """SQLite: run `work` in one transaction on the hot connection, committed or rolled back."""

    def run(conn: sa.Connection) -> T:
        try:
            done = work(conn)
            conn.commit()
        except BaseException:
            if not conn.invalidated:
                conn.rollback()
            raise
        return done

    return _once_more(run)
