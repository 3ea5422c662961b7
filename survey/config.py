"""Configuration from the environment: database, secret key, media folder."""

from __future__ import annotations

import os
import secrets
import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError


class ConfigError(RuntimeError):
    """A setting is missing or wrong; the message says which and how to fix it."""


SUPPORTED_DATABASES = ("sqlite", "postgresql")


def database_uri(raw: str) -> str:
    """Normalise DATABASE_URL to an SQLAlchemy URL using psycopg 3 for PostgreSQL."""
    try:
        url = make_url(raw)
    except ArgumentError as exc:
        raise ConfigError(
            f"DATABASE_URL {raw!r} is not a database URL. Use e.g. "
            "postgresql://user:password@host:5432/dbname or sqlite:////path/to/file.db"
        ) from exc
    backend = url.get_backend_name()
    if backend in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+psycopg")
    elif backend != "sqlite":
        raise ConfigError(
            f"DATABASE_URL uses {backend!r}; Likeness supports {', '.join(SUPPORTED_DATABASES)}."
        )
    return url.render_as_string(hide_password=False)


def int_setting(name: str, default: int, minimum: int = 0) -> int:
    """Read a whole-number setting from the environment; a bad value is a ConfigError."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number (default {default}).") from None
    if value < minimum:
        raise ConfigError(
            f"{name}={value} is too small: use {minimum} or more (default {default})."
        )
    return value


def engine_options(uri: str) -> dict[str, Any]:
    """Return engine options: a pre-pinged pool for PostgreSQL, a busy timeout for SQLite."""
    if uri.startswith("sqlite"):
        return {"connect_args": {"timeout": 30}}
    return {
        "pool_size": int_setting("DB_POOL_SIZE", 5, minimum=1),
        "max_overflow": int_setting("DB_MAX_OVERFLOW", 10),
        "pool_pre_ping": True,
        "pool_recycle": 1800,
        "pool_timeout": 10,
    }


def secret_key(instance_path: Path) -> str:
    """Return SECRET_KEY from the environment, else one generated once and kept in instance/."""
    env = os.environ.get("SECRET_KEY")
    if env:
        return env
    path = instance_path / "secret_key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_hex(32)
    # O_EXCL: two workers starting together must not write two different keys.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


def load(instance_path: Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the Flask configuration from the environment and explicit overrides."""
    overrides = dict(overrides or {})
    instance_path.mkdir(parents=True, exist_ok=True)
    raw_db = overrides.pop("DATABASE_URL", None) or os.environ.get("DATABASE_URL")
    if not raw_db:
        raw_db = f"sqlite:///{instance_path / 'likeness.db'}"
    uri = database_uri(raw_db)
    production = os.environ.get("LIKENESS_ENV", "development") == "production"
    config: dict[str, Any] = {
        "SQLALCHEMY_DATABASE_URI": uri,
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options(uri),
        "MEDIA_DIR": os.environ.get("MEDIA_DIR", str(instance_path / "media")),
        "SIGNUP_OPEN": os.environ.get("SIGNUP_OPEN", "1") not in ("0", "false", "no"),
        "MAX_CONTENT_LENGTH": int_setting("MAX_UPLOAD_MB", 200, minimum=1) * 1024 * 1024,
        # What checking one stimulus ZIP may cost: its images' pixels together, and seconds.
        "STIMULUS_ZIP_MAX_MEGAPIXELS": int_setting("STIMULUS_ZIP_MAX_MEGAPIXELS", 150, minimum=1),
        "STIMULUS_ZIP_MAX_SECONDS": int_setting("STIMULUS_ZIP_MAX_SECONDS", 20, minimum=1),
        # ZIP uploads larger than this are checked and imported by a background job (which
        # may take STIMULUS_ZIP_JOB_MAX_SECONDS), not in the request.
        "STIMULUS_ZIP_INLINE_MB": int_setting("STIMULUS_ZIP_INLINE_MB", 20),
        "STIMULUS_ZIP_JOB_MAX_SECONDS": int_setting("STIMULUS_ZIP_JOB_MAX_SECONDS", 600, minimum=1),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": production,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SECURE": production,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        # Reverse proxies in front whose X-Forwarded-For/-Proto are believed (0: none).
        "TRUSTED_PROXIES": int_setting("TRUSTED_PROXIES", 0),
        # New participants one address may start in one study within STARTS_WINDOW_MINUTES,
        # and one study may take per minute from all addresses (0: no limit).
        "STARTS_PER_ADDRESS": int_setting("STARTS_PER_ADDRESS", 40),
        "STARTS_WINDOW_MINUTES": int_setting("STARTS_WINDOW_MINUTES", 10, minimum=1),
        "STARTS_PER_MINUTE": int_setting("STARTS_PER_MINUTE", 600),
        # A participant still in progress this long after starting expires (0: never).
        "PARTICIPANT_EXPIRE_HOURS": int_setting("PARTICIPANT_EXPIRE_HOURS", 24),
        "PERMANENT_SESSION_LIFETIME": int_setting("SESSION_HOURS", 12, minimum=1) * 3600,
        # Reports of up to this many answer rows are computed in the request; larger ones in
        # the background while the page shows progress.
        "REPORT_INLINE_MAX_ROWS": int_setting("REPORT_INLINE_MAX_ROWS", 20_000),
        # A report computed in a request and still pending or running after this long is marked
        # failed (its web worker was recycled); the next visit starts it again. A report
        # computed by a job fails when its job does.
        "REPORT_STALE_SECONDS": int_setting("REPORT_STALE_SECONDS", 3600, minimum=60),
        # A psych-DS ZIP of a study with more answers than this is written by a background
        # job, whose page offers the file; smaller ones stream in the request.
        "EXPORT_INLINE_MAX_ROWS": int_setting("EXPORT_INLINE_MAX_ROWS", 100_000),
        # Background jobs (survey.jobs, docs/jobs.md). Without JOBS_BROKER_URL they run in a
        # thread of the web process; with it (redis://…), on that queue, run by `flask worker`.
        "JOBS_BROKER_URL": os.environ.get("JOBS_BROKER_URL", "").strip(),
        # The queue's name (its Redis keys' prefix): web nodes and workers must agree on it.
        "JOBS_QUEUE": os.environ.get("JOBS_QUEUE", "likeness").strip() or "likeness",
        # Starts of one job before it fails for good (an error or a killed worker each count).
        "JOBS_MAX_ATTEMPTS": int_setting("JOBS_MAX_ATTEMPTS", 3, minimum=1),
        # A worker renews the heartbeat of its job and its own this often; a job whose
        # heartbeat is older than JOBS_STALE_SECONDS is taken to be abandoned and started again.
        "JOBS_HEARTBEAT_SECONDS": int_setting("JOBS_HEARTBEAT_SECONDS", 10, minimum=1),
        "JOBS_STALE_SECONDS": int_setting("JOBS_STALE_SECONDS", 60, minimum=2),
        "JOBS_RETRY_DELAY_MS": int_setting("JOBS_RETRY_DELAY_MS", 5000),
        "JOBS_TIME_LIMIT_SECONDS": int_setting("JOBS_TIME_LIMIT_SECONDS", 3600, minimum=1),
        "JOBS_SHUTDOWN_SECONDS": int_setting("JOBS_SHUTDOWN_SECONDS", 30, minimum=1),
        # Of a million queue commands, how many also requeue the messages of dead workers.
        "JOBS_MAINTENANCE_CHANCE": int_setting("JOBS_MAINTENANCE_CHANCE", 10_000, minimum=1),
        # check-deploy warns when jobs wait and no worker was seen for this long.
        "JOBS_WORKER_SILENT_SECONDS": int_setting("JOBS_WORKER_SILENT_SECONDS", 120, minimum=1),
        "PREFERRED_URL_SCHEME": "https" if production else "http",
        "LIKENESS_ENV": "production" if production else "development",
        "WTF_CSRF_TIME_LIMIT": None,
    }
    config.update(overrides)
    if "SECRET_KEY" not in config:
        config["SECRET_KEY"] = secret_key(instance_path)
    return config


@sa.event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Turn on foreign keys, WAL and a busy timeout on every SQLite connection."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
