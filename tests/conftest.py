"""Shared fixtures: the app on a clean database (SQLite, or PostgreSQL when asked), clients,
a browser.

`LIKENESS_TEST_DB` names the database under test (a PostgreSQL URL); unset, each run uses a
fresh SQLite file. The schema is built once per run by the Alembic migrations, and every test
starts from empty tables. Under pytest-xdist each worker gets a database of its own.
"""

from __future__ import annotations

import os
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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Choose the tests of this pass, longest first.

    On the PostgreSQL pass, run only the tests that touch the database, less those marked
    `once` (what they check is analysis, words or drawings, the same on either database). On
    the SQLite pass, leave out the tests marked `postgres` (they need PostgreSQL's locks) and,
    when `LIKENESS_BROWSER_ONCE` is set (`make test` with a PostgreSQL pass to follow), the
    browser tests that serve the app: they run once, against the deployment database. Browser
    tests first, then slow ones, so that the workers finish together instead of one waiting on
    a long test picked up last.
    """
    on_postgres = bool(os.environ.get("LIKENESS_TEST_DB"))
    browser_elsewhere = not on_postgres and bool(os.environ.get("LIKENESS_BROWSER_ONCE"))
    keep, drop = [], []
    for item in items:
        uses_db = "app" in getattr(item, "fixturenames", ())
        if on_postgres:
            wanted = uses_db and item.get_closest_marker("once") is None
        else:
            wanted = item.get_closest_marker("postgres") is None and not (
                browser_elsewhere and uses_db and item.get_closest_marker("browser")
            )
        (keep if wanted else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
    keep.sort(key=_expected_length)
    items[:] = keep


def _expected_length(item: pytest.Item) -> int:
    """Return 0 for a browser test, 1 for a slow one, 2 for the rest (a sort key)."""
    if item.get_closest_marker("browser"):
        return 0
    return 1 if item.get_closest_marker("slow") else 2


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """Build the schema once with the migrations and yield the database URL under test."""
    from flask_migrate import upgrade

    raw = os.environ.get("LIKENESS_TEST_DB")
    folder = None if raw else _scratch("likeness-db-")
    url = _postgres_url_for_worker(raw) if raw else f"sqlite:///{folder / 'likeness-test.db'}"

    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "schema", "TESTING": True})
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        db.engine.dispose()
    yield url
    if raw:  # dropped through the URL's own database (connections left over are forced out)
        _on_server(raw, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    else:
        shutil.rmtree(folder, ignore_errors=True)


def _empty_tables() -> None:
    """Delete every row of every table, children first."""
    tables = list(reversed(Base.metadata.sorted_tables))
    if db.engine.dialect.name == "postgresql":
        names = ", ".join(f'"{t.name}"' for t in tables)
        db.session.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    else:
        for table in tables:
            db.session.execute(table.delete())
    db.session.commit()


@pytest.fixture
def app(database_url: str):
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
        _empty_tables()
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


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium, headless, driven by Playwright; a missing browser fails the run."""
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
