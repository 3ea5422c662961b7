"""`flask check-deploy`: name every setting that is unsafe on a production server, with its fix."""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy.exc import SQLAlchemyError

from survey.extensions import db
from survey.models import Researcher
from survey.stimuli.manifest import MAX_ZIP_BYTES

MIN_SECRET_LENGTH = 32
# Secrets seen in documentation, tests and tutorials: anyone could sign a session with them.
KNOWN_SECRETS = frozenset(
    {
        "dev",
        "development",
        "secret",
        "secret-key",
        "secret_key",
        "changeme",
        "change-me",
        "please-change-me",
        "test",
        "testing",
        "schema",
        "test-secret-key-not-for-production",
        "likeness",
        "demo",
    }
)
TRUE_WORDS = ("1", "true", "yes", "on")
MIB = 1024 * 1024


@dataclass(frozen=True)
class Problem:
    """One unsafe setting: what is wrong and how to fix it."""

    setting: str
    message: str
    fix: str


def _truthy(value: Any) -> bool:
    """Tell whether an environment value or setting means 'on'."""
    if isinstance(value, str):
        return value.strip().lower() in TRUE_WORDS
    return bool(value)


def workers_from_environment(environ: Mapping[str, str]) -> int | None:
    """Return the gunicorn worker count set by WEB_CONCURRENCY or GUNICORN_CMD_ARGS, if any."""
    raw = environ.get("WEB_CONCURRENCY")
    args = shlex.split(environ.get("GUNICORN_CMD_ARGS", ""))
    for index, arg in enumerate(args):
        if arg in ("-w", "--workers") and index + 1 < len(args):
            raw = args[index + 1]
        elif arg.startswith("--workers="):
            raw = arg.split("=", 1)[1]
        elif arg.startswith("-w") and len(arg) > 2:
            raw = arg[2:]
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def secret_problems(config: Mapping[str, Any], environ: Mapping[str, str]) -> list[Problem]:
    """Check that the session-signing key comes from the environment and cannot be guessed."""
    fix = (
        "Set SECRET_KEY in the environment of every worker to one long random value, e.g. "
        "the output of: python3 -c 'import secrets; print(secrets.token_hex(32))'"
    )
    key = config.get("SECRET_KEY") or ""
    if isinstance(key, bytes):
        key = key.decode("utf-8", "replace")
    problems = []
    if not environ.get("SECRET_KEY"):
        problems.append(
            Problem(
                "SECRET_KEY",
                "SECRET_KEY is not set in the environment; the key generated into "
                "instance/secret_key differs per machine and is lost with the folder.",
                fix,
            )
        )
    if key.strip().lower() in KNOWN_SECRETS:
        problems.append(Problem("SECRET_KEY", "SECRET_KEY is a well-known default value.", fix))
    elif len(key) < MIN_SECRET_LENGTH:
        problems.append(
            Problem(
                "SECRET_KEY",
                f"SECRET_KEY has {len(key)} characters; at least {MIN_SECRET_LENGTH} are needed.",
                fix,
            )
        )
    elif len(set(key)) < 8:
        problems.append(
            Problem("SECRET_KEY", "SECRET_KEY repeats a few characters; it is easy to guess.", fix)
        )
    return problems


def https_problems(config: Mapping[str, Any]) -> list[Problem]:
    """Check that the server runs as production behind HTTPS, with Secure cookies."""
    problems = []
    if config.get("LIKENESS_ENV") != "production":
        problems.append(
            Problem(
                "LIKENESS_ENV",
                "LIKENESS_ENV is not 'production': cookies are sent over plain HTTP and no "
                "Strict-Transport-Security header is sent.",
                "Set LIKENESS_ENV=production and serve the site through an HTTPS reverse proxy.",
            )
        )
    for name in ("SESSION_COOKIE_SECURE", "REMEMBER_COOKIE_SECURE"):
        if not config.get(name):
            problems.append(
                Problem(
                    name,
                    f"{name} is off: the sign-in cookie would also travel over plain HTTP.",
                    "Set LIKENESS_ENV=production (it turns the Secure flag on).",
                )
            )
    if config.get("PREFERRED_URL_SCHEME") != "https":
        problems.append(
            Problem(
                "PREFERRED_URL_SCHEME",
                f"Links made outside a request use {config.get('PREFERRED_URL_SCHEME')!r}, "
                "not https.",
                "Set LIKENESS_ENV=production (it makes links https).",
            )
        )
    return problems


def config_problems(config: Mapping[str, Any], environ: Mapping[str, str]) -> list[Problem]:
    """Check debug, testing, CSRF, cookie flags, the upload limit and sign-up."""
    problems = []
    if config.get("DEBUG") or _truthy(environ.get("FLASK_DEBUG", "")):
        problems.append(
            Problem(
                "DEBUG",
                "Debug mode is on: an error page would show code and let a visitor run it.",
                "Unset FLASK_DEBUG and never pass --debug on a server.",
            )
        )
    if config.get("TESTING"):
        problems.append(
            Problem(
                "TESTING",
                "TESTING is on: errors are not caught.",
                "Do not set TESTING on a server.",
            )
        )
    if not config.get("WTF_CSRF_ENABLED", True):
        problems.append(
            Problem(
                "WTF_CSRF_ENABLED",
                "CSRF protection is off: another site could submit forms as a signed-in "
                "researcher.",
                "Remove WTF_CSRF_ENABLED=False from the configuration.",
            )
        )
    if not config.get("SESSION_COOKIE_HTTPONLY", True):
        problems.append(
            Problem(
                "SESSION_COOKIE_HTTPONLY",
                "The session cookie is readable from scripts.",
                "Remove SESSION_COOKIE_HTTPONLY=False from the configuration.",
            )
        )
    if str(config.get("SESSION_COOKIE_SAMESITE") or "").lower() not in ("lax", "strict"):
        problems.append(
            Problem(
                "SESSION_COOKIE_SAMESITE",
                "The session cookie is sent with requests from other sites.",
                "Set SESSION_COOKIE_SAMESITE to 'Lax' (the default of Likeness).",
            )
        )
    if not config.get("MAX_CONTENT_LENGTH"):
        problems.append(
            Problem(
                "MAX_CONTENT_LENGTH",
                "Requests have no size limit: one huge upload can fill the server's memory or "
                "disk.",
                "Set MAX_UPLOAD_MB (200 by default).",
            )
        )
    elif config["MAX_CONTENT_LENGTH"] > MAX_ZIP_BYTES:
        # No accepted upload is larger than a stimulus ZIP; a higher limit only lets a visitor
        # keep a worker and the temporary disk busy with a body that is refused at the end.
        problems.append(
            Problem(
                "MAX_CONTENT_LENGTH",
                f"Requests may be {config['MAX_CONTENT_LENGTH'] // MIB} MB, more than the "
                f"largest stimulus ZIP accepted ({MAX_ZIP_BYTES // MIB} MB): one request can "
                "hold a worker and fill the disk for nothing.",
                f"Set MAX_UPLOAD_MB to at most {MAX_ZIP_BYTES // MIB} (200 by default).",
            )
        )
    if config.get("SIGNUP_OPEN", True):
        problems.append(
            Problem(
                "SIGNUP_OPEN",
                "Researcher sign-up is open: anyone who finds the server can make an account.",
                "Set SIGNUP_OPEN=0 and create accounts with `flask create-researcher` or "
                "an administrator's invitation.",
            )
        )
    return problems


def database_problems(config: Mapping[str, Any], workers: int | None) -> list[Problem]:
    """Check that an SQLite database is not shared by several worker processes."""
    uri = str(config.get("SQLALCHEMY_DATABASE_URI", ""))
    if not uri.startswith("sqlite") or workers is None or workers <= 1:
        return []
    return [
        Problem(
            "DATABASE_URL",
            f"SQLite with {workers} workers: writes queue behind one lock and a busy study "
            "can stall or fail.",
            "Set DATABASE_URL to a PostgreSQL database, or run a single worker.",
        )
    ]


def proxy_problems(config: Mapping[str, Any], proxies: int | None) -> list[Problem]:
    """Check TRUSTED_PROXIES against the number of proxies the operator says are in front.

    The check cannot see the network, so a trust it cannot confirm is a problem until the
    operator states the number with --proxies: with fewer proxies than trusted, a client writes
    X-Forwarded-For itself and picks the address its sign-in attempts are counted under.
    """
    trusted = int(config.get("TRUSTED_PROXIES") or 0)
    fix = (
        "Count the reverse proxies between the internet and gunicorn; set TRUSTED_PROXIES to "
        "that number (0 when gunicorn is reached directly) and confirm it with "
        "`check-deploy --proxies N`."
    )
    if proxies is None and trusted > 0:
        return [
            Problem(
                "TRUSTED_PROXIES",
                f"TRUSTED_PROXIES={trusted} believes X-Forwarded-For from {trusted} proxy(ies), "
                "which check-deploy cannot see; without them in front, every client chooses "
                "the address its sign-in limit and audit records use.",
                fix,
            )
        ]
    if proxies is not None and proxies != trusted:
        return [
            Problem(
                "TRUSTED_PROXIES",
                f"TRUSTED_PROXIES={trusted} but {proxies} proxy(ies) are in front: "
                + (
                    "clients can choose the address they are counted under."
                    if trusted > proxies
                    else "every visitor is counted under a proxy's address."
                ),
                fix,
            )
        ]
    return []


def check(
    config: Mapping[str, Any],
    environ: Mapping[str, str],
    workers: int | None = None,
    proxies: int | None = None,
) -> list[Problem]:
    """Return every unsafe production setting of this configuration and environment."""
    if workers is None:
        workers = workers_from_environment(environ)
    return [
        *config_problems(config, environ),
        *secret_problems(config, environ),
        *https_problems(config),
        *database_problems(config, workers),
        *proxy_problems(config, proxies),
    ]


def account_problems() -> list[Problem]:
    """Check the database for the demo researcher still signing in with its public password."""
    from survey.demo import DEMO_LOGIN, DEMO_PASSWORD

    try:
        demo = db.session.scalar(sa.select(Researcher).where(Researcher.email == DEMO_LOGIN))
    except SQLAlchemyError as exc:
        db.session.rollback()
        return [
            Problem(
                "DATABASE_URL",
                f"The researcher accounts could not be read ({type(exc).__name__}), so the "
                "demo account was not checked.",
                "Check DATABASE_URL and run `flask db upgrade`, then run check-deploy again.",
            )
        ]
    if demo is None or not demo.check_password(DEMO_PASSWORD):
        return []
    return [
        Problem(
            "DEMO_ACCOUNT",
            f"The demo account {DEMO_LOGIN!r} with the password {DEMO_PASSWORD!r} (printed in "
            "the README) exists: anyone can sign in as a researcher.",
            "Delete the demo researcher and its study, or change its password, on a server "
            "reachable by others; never run `flask seed-demo` there.",
        )
    ]


def job_problems(config: Mapping[str, Any]) -> list[Problem]:
    """Jobs waiting while no job worker was seen lately (none started, or all stopped)."""
    from datetime import timedelta

    from survey import jobs
    from survey.models import utcnow

    try:
        waiting = jobs.waiting_jobs()
        seen = jobs.last_seen_worker()
    except SQLAlchemyError:
        db.session.rollback()
        return []  # the database check reports an unreachable database
    silent = config.get("JOBS_WORKER_SILENT_SECONDS", 120)
    if not waiting or not config.get("JOBS_BROKER_URL"):
        return []  # without a queue, the web process runs its jobs itself
    if seen is not None and seen >= utcnow() - timedelta(seconds=silent):
        return []
    when = "never" if seen is None else f"last at {seen:%Y-%m-%d %H:%M:%S} UTC"
    return [
        Problem(
            "JOBS_BROKER_URL",
            f"{waiting} job(s) wait in the queue, but no job worker was seen in the last "
            f"{silent} s ({when}): reports, large exports and ZIP imports never finish.",
            "Start a worker beside the web processes with the same DATABASE_URL, "
            "JOBS_BROKER_URL and JOBS_QUEUE: `flask worker`.",
        )
    ]


def notes(config: Mapping[str, Any], proxies: int | None = None) -> list[str]:
    """Return advice that depends on how the server is reached, which the checks cannot see."""
    if proxies is None and int(config.get("TRUSTED_PROXIES") or 0) == 0:
        return [
            (
                "TRUSTED_PROXIES is 0: behind a reverse proxy (nginx, Caddy) set "
                "TRUSTED_PROXIES=1, or every visitor shares the proxy's address and its "
                "sign-in limit."
            )
        ]
    return []


def _mask(uri: str) -> str:
    """Hide the password of a database URL."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", uri)


@click.command("check-deploy")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Number of gunicorn workers you will run (default: WEB_CONCURRENCY or GUNICORN_CMD_ARGS).",
)
@click.option(
    "--proxies",
    type=click.IntRange(min=0),
    default=None,
    help="Number of reverse proxies in front of gunicorn, which check-deploy cannot see; "
    "needed when TRUSTED_PROXIES is above 0.",
)
@with_appcontext
def check_deploy_command(workers: int | None, proxies: int | None) -> None:
    """Report unsafe production settings; exit with status 1 when there is any."""
    config = current_app.config
    problems = [
        *check(config, os.environ, workers, proxies),
        *account_problems(),
        *job_problems(config),
    ]
    click.echo(f"Database: {_mask(str(config.get('SQLALCHEMY_DATABASE_URI', '')))}")
    for note in notes(config, proxies):
        click.echo(f"Note: {note}")
    if not problems:
        click.echo("No unsafe setting found.")
        return
    click.echo(f"{len(problems)} unsafe setting{'s' if len(problems) != 1 else ''}:")
    for problem in problems:
        click.echo(f"- {problem.setting}: {problem.message}\n  Fix: {problem.fix}")
    raise SystemExit(1)
