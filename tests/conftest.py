"""Shared fixtures: the app on a clean database (SQLite, and PostgreSQL too when asked),
clients, a browser.

Every test that uses the app runs on SQLite; when `LIKENESS_TEST_DB` names a PostgreSQL
server, it runs there too, in the same session, as a second variant of the test
(`test_x[sqlite]`, `test_x[postgresql]`). Each database's schema is built once per worker by
the Alembic migrations, and every test starts from empty tables. Under pytest-xdist each
worker gets databases of its own.
"""

from __future__ import annotations

import gc
import os
import re
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from jinja2 import BytecodeCache
from jinja2.bccache import Bucket
from sqlalchemy.engine import make_url
from werkzeug.routing.rules import Rule

from survey import create_app, jobs
from survey.config import database_uri
from survey.extensions import db
from survey.models import Base, Researcher
from survey.participant import hotdb
from tests.helpers import ROOT, sign_in

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


# Files a test writes are thrown away: on a RAM file system (when the machine has one) the
# fsyncs that keep a real study's images and database safe cost nothing.
RAM = Path("/dev/shm")


def _scratch(prefix: str) -> Path:
    """Return a new folder for files the test run throws away, in RAM when there is some."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=RAM if RAM.is_dir() else None))


class _CompiledTemplates(BytecodeCache):
    """Templates compiled once per test process and shared by every test's app (each app has
    an environment of its own, made alike by `create_app`; a bucket checks its source's
    checksum before it is used)."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


TEMPLATES = _CompiledTemplates()


# Werkzeug compiles two Python functions for each URL rule of each app it is given (about 20 ms
# for the app's hundred rules); tests make an app per test. A builder depends only on the
# rule's text, its parsed parts and its defaults (converters are reached through the rule it
# is bound to), so builders are compiled once per test process and shared by equal rules.
_BUILDERS: dict[tuple, object] = {}
_compile_builder = Rule._compile_builder


def _shared_builder(self: Rule, append_unknown: bool = True):
    defaults = tuple(sorted((key, repr(value)) for key, value in (self.defaults or {}).items()))
    key = (self.rule, tuple(self._trace), defaults, append_unknown)
    builder = _BUILDERS.get(key)
    if builder is None:
        builder = _BUILDERS[key] = _compile_builder(self, append_unknown)
    return builder


Rule._compile_builder = _shared_builder

# The databases every test using the app runs on: SQLite, and PostgreSQL when a server is named.
POSTGRES_URL = os.environ.get("LIKENESS_TEST_DB", "")
DATABASES = ("sqlite", "postgresql") if POSTGRES_URL else ("sqlite",)


def _worker() -> str:
    """Return the xdist worker name ('main' when not distributed)."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def _run_id() -> str:
    """Return an id of this test run, the same in every xdist worker of the run."""
    uid = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"{os.getpid():x}"
    return "".join(ch for ch in uid if ch.isalnum())[:12].lower()


def _on_server(url: str, *statements: str) -> None:
    """Run statements in autocommit on the database of `url` (the server's administration)."""
    admin = sa.create_engine(make_url(database_uri(url)), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
    admin.dispose()


def _postgres_url_for_worker(url: str) -> str:
    """Create and return a database of this run's and worker's own on the server of `url`.

    The name holds the run's id, so two runs against one server (two developers, or CI
    beside a developer) never share, and so never empty, each other's tables.
    """
    base = make_url(database_uri(url))
    name = f"{base.database}_{_worker()}_{_run_id()}"
    _on_server(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    return base.set(database=name).render_as_string(hide_password=False)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Spare the garbage collector the objects every test shares.

    After collection a worker holds everything the tests import (pandas, SciPy, matplotlib,
    SQLAlchemy's mappings...); Python's collector went through them again on each of its
    frequent passes, about a fifth of a test's CPU in the researcher and participant tests.
    They are moved out of its way (`gc.freeze`), and passes come after more allocations.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def _database_of(item: pytest.Item) -> str | None:
    """Return the database a test variant runs on ('sqlite', 'postgresql'), or None."""
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("database_url") if callspec is not None else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Choose the tests of this run, and their order.

    A test using the app has a variant per database. The PostgreSQL variant is left out for
    tests marked `once` (what they check is analysis, words, drawings or redirects, the same on
    either database); the SQLite variant for tests marked `postgres` (they need PostgreSQL's
    locks and plans) and, when PostgreSQL is under test, for the browser tests: they run once,
    against the deployment database. Then `_in_running_order`.
    """
    with_postgres = "postgresql" in DATABASES
    keep, drop = [], []
    for item in items:
        database = _database_of(item)
        if database == "postgresql":
            wanted = item.get_closest_marker("once") is None
        else:
            wanted = item.get_closest_marker("postgres") is None and not (
                with_postgres and database == "sqlite" and item.get_closest_marker("browser")
            )
        (keep if wanted else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
    items[:] = _in_running_order(keep)


def _scope(nodeid: str) -> str:
    """The unit a worker takes at once: a file's tests on one database."""
    path = nodeid.split("::", 1)[0]
    return f"{path}[postgresql]" if _POSTGRES_ID.search(nodeid) else path


_POSTGRES_ID = re.compile(r"[\[-]postgresql[\]-]")


def _in_running_order(items: list[pytest.Item]) -> list[pytest.Item]:
    """Order the tests so that the workers stay busy and finish together.

    Workers take whole scopes (`_scope`) in this order. Browser scopes mostly wait (on
    chromium, on timed pages), the others mostly compute: the two kinds alternate, so that
    while some workers wait the others use the cores. Long scopes go first (marked `slow`, then
    by their number of tests), so that no worker is left with a long one at the end.
    """
    scopes: dict[str, list[pytest.Item]] = {}
    for item in items:
        scopes.setdefault(_scope(item.nodeid), []).append(item)

    def longest_first(name: str) -> tuple[int, int]:
        slow = any(item.get_closest_marker("slow") for item in scopes[name])
        return (0 if slow else 1, -len(scopes[name]))

    def waits(name: str) -> bool:
        return any(item.get_closest_marker("browser") for item in scopes[name])

    waiting = sorted((name for name in scopes if waits(name)), key=longest_first)
    computing = sorted((name for name in scopes if not waits(name)), key=longest_first)
    order: list[str] = []
    for index in range(max(len(waiting), len(computing))):
        order += waiting[index : index + 1] + computing[index : index + 1]
    return [item for name in order for item in scopes[name]]


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: unknown without it (-p no:xdist)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """With `--dist loadfile`, hand out whole scopes (`_scope`: a file's tests on one database,
    so a long file's SQLite and PostgreSQL halves run side by side), in the collection's order
    (`_in_running_order`) rather than pytest-xdist's largest-first."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class FileAndDatabase(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _scope(nodeid)

    config.option.loadscopereorder = False
    return FileAndDatabase(config, log)


class _Databases:
    """This worker's databases, each made and migrated when a test first asks for it."""

    def __init__(self) -> None:
        self._urls: dict[str, str] = {}
        self._folder: Path | None = None

    def url(self, database: str) -> str:
        if database not in self._urls:
            self._urls[database] = self._make(database)
        return self._urls[database]

    def _make(self, database: str) -> str:
        from flask_migrate import upgrade

        if database == "postgresql":
            url = _postgres_url_for_worker(POSTGRES_URL)
        else:
            self._folder = _scratch("likeness-db-")
            url = f"sqlite:///{self._folder / 'likeness-test.db'}"
        app = create_app({"DATABASE_URL": url, "SECRET_KEY": "schema", "TESTING": True})
        with app.app_context():
            upgrade(directory=str(ROOT / "migrations"))
            db.engine.dispose()
        return url

    def drop(self) -> None:
        if "postgresql" in self._urls:  # dropped through the server's own database (connections
            # left over are forced out)
            name = make_url(self._urls["postgresql"]).database
            _on_server(POSTGRES_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)


@pytest.fixture(scope="session")
def databases() -> Iterator[_Databases]:
    """This worker's databases (made on first use, dropped at the end of the run)."""
    made = _Databases()
    yield made
    made.drop()


@pytest.fixture(params=DATABASES)
def database_url(request, databases: _Databases) -> str:
    """The URL of the database this variant of the test runs on, its schema migrated."""
    return databases.url(request.param)


# PostgreSQL's TRUNCATE makes new files for every table and index (tens of milliseconds a
# test); a DELETE of the few rows a test leaves costs little. With autovacuum off (as on the
# project's test machines) the deleted rows would stay: every 50th clean-up truncates, and so
# does the clean-up before a test of PostgreSQL's own behaviour (marker `postgres`: its locks,
# its plans of statements prepared on the small tables of a new database).
_CLEANUPS = {"count": 0}
TRUNCATE_EVERY = 50


def _empty_tables(truncate: bool = False) -> None:
    """Delete every row of every table, children first, and start the ids at 1 again."""
    tables = list(reversed(Base.metadata.sorted_tables))
    if db.engine.dialect.name == "postgresql":
        _CLEANUPS["count"] += 1
        connection = db.session.connection()
        if truncate or _CLEANUPS["count"] % TRUNCATE_EVERY == 0:
            names = ", ".join(f'"{t.name}"' for t in tables)
            connection.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        else:
            sequences = connection.exec_driver_sql(
                "SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename) "
                "FROM pg_sequences WHERE last_value IS NOT NULL"
            ).scalars()
            statements = [f'DELETE FROM "{t.name}"' for t in tables]
            statements += [f"SELECT setval('{name}', 1, false)" for name in sequences]
            connection.exec_driver_sql("; ".join(statements))
    else:
        for table in tables:
            db.session.execute(table.delete())
    db.session.commit()


@pytest.fixture
def app(request, database_url: str):
    """The application on empty tables, with CSRF off (its own tests turn it on)."""
    media = _scratch("likeness-media-")
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "SECRET_KEY": "test-secret-key-not-for-production",
            "MEDIA_DIR": str(media),
            "WTF_CSRF_ENABLED": False,
            "RATELIMIT_ENABLED": True,
        }
    )
    app.jinja_env.bytecode_cache = TEMPLATES
    with app.app_context():
        _empty_tables(truncate=request.node.get_closest_marker("postgres") is not None)
    yield app
    # A job thread still running would open connections on pools made after disposal, left
    # to the garbage collector: let the test's background jobs finish first.
    jobs.join_threads(timeout=60)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    hotdb.hot_path.dispose(app)
    shutil.rmtree(media, ignore_errors=True)


@pytest.fixture
def client(app):
    """A test client for the app."""
    return app.test_client()


@pytest.fixture
def runner(app):
    """A runner for the app's `flask` commands."""
    return app.test_cli_runner()


@pytest.fixture
def make_researcher(app):
    """Return a function that creates a researcher account and returns its id.

    Its password hash is made once per password and test run (tests/helpers.py): a salted
    scrypt hash costs a quarter of a second on purpose, and any hash of the password verifies.
    """
    from tests.helpers import password_hash

    def make(email: str = "ada@example.org", password: str = "correct horse battery", **kw) -> int:
        with app.app_context():
            researcher = Researcher(email=email, name=kw.pop("name", "Ada"), **kw)
            researcher.password_hash = password_hash(password)
            db.session.add(researcher)
            db.session.commit()
            return researcher.id

    return make


class AuthActions:
    """Sign test clients in and out as a researcher (the `client` fixture unless told another)."""

    def __init__(self, app, client) -> None:
        self._app = app
        self._client = client

    def _pick(self, client):
        return self._client if client is None else client

    def sign_in(self, researcher_id: int, client=None) -> None:
        """Sign the client in as the researcher without going through the form."""
        sign_in(self._pick(client), self._app, researcher_id)

    def login(
        self,
        identifier: str = "ada@example.org",
        password: str = "correct horse battery",
        client=None,
    ):
        """Post the sign-in form (the defaults are those of `make_researcher`)."""
        return self._pick(client).post(
            "/r/login", data={"identifier": identifier, "password": password}
        )

    def logout(self, client=None):
        """Post the sign-out form."""
        return self._pick(client).post("/r/logout")


@pytest.fixture
def auth(app, client) -> AuthActions:
    """Sign the `client` fixture (or another client of the app) in and out as a researcher."""
    return AuthActions(app, client)


@pytest.fixture
def demo(app, monkeypatch):
    """Seed the demo study and return its id (drawings made once per run: tests/helpers.py)."""
    from tests.helpers import seed_quick_demo

    return seed_quick_demo(app, monkeypatch)


def _free_port() -> int:
    """Return a free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read_whole(app):
    """The app as the browser tests' server runs it: each response read whole, and closed,
    before it is sent. Werkzeug's development server reads the socket before it closes a
    response, so a browser that leaves a page while its images load (a dropped connection)
    left the image's file open to the garbage collector."""

    def serve(environ, start_response):
        result = app(environ, start_response)
        try:
            return [b"".join(result)]
        finally:
            if hasattr(result, "close"):
                result.close()

    return serve


@pytest.fixture
def live_server(app) -> Iterator[str]:
    """Serve the app on 127.0.0.1 in a thread and return its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", _free_port(), _read_whole(app), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium, headless, driven by Playwright; a missing browser fails the run.

    One per test file: Playwright's synchronous API keeps an event loop running while it is
    open, and a worker goes on to other files (some run their own `asyncio.run`)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)"
        )
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()
