"""The participant hot path as one Flask extension (`hot_path`): its database connections (a
psycopg pool of its own on PostgreSQL) and what each worker keeps between requests."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import Flask, current_app, g
from sqlalchemy.exc import DBAPIError

from survey.cache import BoundedCache
from survey.extensions import db

EXTENSION = "likeness_hot_path"
_CONNECTION = "likeness_hot_connection"
_POOL = "likeness_hot_pool"
_CURSOR = "likeness_hot_cursor"
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


class HotPathState:
    """One app's hot path: its PostgreSQL pool (made on first use) and what its workers keep
    between requests, each in a bounded cache (`survey.cache.BoundedCache`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.made = False
        self.postgres: _Postgres | None = None
        # Frozen designs by (study id, design SHA-256), of the studies most recently started
        # (`starting.study_design`): an open study's design cannot change.
        self.designs: BoundedCache[tuple[int, str], Any] = BoundedCache(256)
        # Block id -> (stored settings, settings with defaults, settings key), and settings key
        # -> settings with defaults, for answers whose ticket names the key
        # (`answers.block_settings`).
        self.block_settings: BoundedCache[int, tuple[dict | None, dict, str]] = BoundedCache(4096)
        self.settings_by_key: BoundedCache[str, dict[str, Any]] = BoundedCache(4096)
        # Participant cookies already verified, by (secret key, cookie) -> public id: a
        # participant sends the same cookie twice a trial, and checking its signature costs more
        # than reading it (`routes._cookie_public_id`).
        self.verified_cookies: BoundedCache[tuple[str, str], str] = BoundedCache(8192)
        # Rendered question sets by (questions, attention check, language): a few per study
        # block (`routes._questions_html`).
        self.questions_html: BoundedCache[tuple, Any] = BoundedCache(1024)
        # Block id -> its study's languages and its texts in them, for the trial pages of
        # opened studies, whose languages and block texts are frozen
        # (`survey.study_texts.trial_texts`).
        self.block_texts: BoundedCache[int, Any] = BoundedCache(4096)
        # Image public ids -> their display files' storage keys (`routes._display_key`).
        self.display_keys: BoundedCache[str, str] = BoundedCache(4096)


class HotPath:
    """The Flask extension: `init_app` gives the app its hot-path state and the teardown that
    gives back each app context's connection."""

    def init_app(self, app: Flask) -> None:
        """Give the app its hot-path state; its pool is made on first use."""
        app.extensions[EXTENSION] = HotPathState()
        app.teardown_appcontext(close)

    @staticmethod
    def state() -> HotPathState:
        """Return the current app's hot-path state."""
        return current_app.extensions[EXTENSION]

    @staticmethod
    def dispose(app: Flask) -> None:
        """Close the app's hot-path pool, if it has one (tests make many apps)."""
        state = app.extensions.get(EXTENSION)
        if state is None:
            return
        with state.lock:
            made, state.postgres, state.made = state.postgres, None, False
        if made is not None:
            made.close()


hot_path = HotPath()


def _hot() -> _Postgres | None:
    """Return the app's PostgreSQL hot path, or None on SQLite (made on first use)."""
    state = current_app.extensions[EXTENSION]
    if not state.made:
        with state.lock:
            if not state.made:
                engine = db.engine
                if engine.dialect.name == "postgresql":
                    options = current_app.config["SQLALCHEMY_ENGINE_OPTIONS"]
                    state.postgres = _Postgres(engine, options)
                state.made = True
    return state.postgres


def connection() -> Any:
    """Return this app context's hot-path connection, taken on first use.

    A psycopg connection on PostgreSQL, an SQLAlchemy connection elsewhere.
    """
    open_ = g.get(_CONNECTION)
    if open_ is None or open_.closed:
        hot = _hot()
        open_ = hot.take() if hot is not None else db.engine.connect()
        setattr(g, _CONNECTION, open_)
        # The pool it came from goes back with it: an app disposed meanwhile has another.
        setattr(g, _POOL, hot.pool if hot is not None else None)
    return open_


def close(_exc: BaseException | None = None) -> None:
    """Give back the app context's hot-path connection, if one was taken (a teardown)."""
    open_ = g.pop(_CONNECTION, None)
    pool = g.pop(_POOL, None)
    if open_ is None:
        return
    if pool is not None:
        # A broken connection is discarded by its pool, and a closed pool closes it.
        pool.putconn(open_)
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
