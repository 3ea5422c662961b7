"""Databases for the benchmarks: a PostgreSQL database or a whole throwaway cluster per run, the
demo study seeded into it, and the environment the app runs with."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from bench.servers import LOOPBACK, ROOT, free_port

# The local server's administrative database: bench databases are created and dropped through it.
ADMIN_URL = os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")
# The study `flask seed-demo` creates, which every load run takes its participants through.
SLUG = "demo"
# A bench starts hundreds of participants from one address within minutes: the start limits
# stay on (their counting is part of the cost measured) with bounds no run reaches.
UNLIMITED_STARTS = {"STARTS_PER_ADDRESS": "100000000", "STARTS_PER_MINUTE": "100000000"}


class BenchDatabase:
    """A PostgreSQL database made for one run (dropped first if left over) and dropped after it."""

    def __init__(self, name: str, admin_url: str = ADMIN_URL) -> None:
        from survey.config import database_uri

        self.admin = make_url(database_uri(admin_url))
        self.name = name
        self.url = (
            self.admin.set(database=name)
            .set(drivername="postgresql")
            .render_as_string(hide_password=False)
        )

    def _admin(self, statement: str) -> None:
        """Run one statement on the administrative database, outside a transaction."""
        engine = sa.create_engine(self.admin, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(statement))
        finally:
            engine.dispose()

    def create(self) -> BenchDatabase:
        """Create the database empty."""
        self.drop()
        self._admin(f'CREATE DATABASE "{self.name}"')
        return self

    def drop(self) -> None:
        """Drop the database, closing whatever is still connected to it."""
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def flask(env: Mapping[str, str], *args: str, timeout: float = 300.0) -> str:
    """Run a `flask --app app` command with the run's environment; return its output."""
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", *args],
        env=dict(env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"flask {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def prepare_demo(env: Mapping[str, str]) -> None:
    """Migrate the run's database and seed the demo study in it, as an operator would."""
    flask(env, "db", "upgrade")
    flask(env, "seed-demo")


def app_env(database_url: str, workdir: Path, **extra: str) -> dict[str, str]:
    """Return the environment the app runs with in a bench run."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LIKENESS_TEST")}
    env.update(
        DATABASE_URL=database_url,
        MEDIA_DIR=str(workdir / "media"),
        SECRET_KEY="bench-" + os.urandom(8).hex(),
        LIKENESS_ENV="development",
        PYTHONPATH=str(ROOT),
        FLASK_APP="app",
        **UNLIMITED_STARTS,
    )
    env.update(extra)
    return env


class PrivateCluster:
    """A throwaway PostgreSQL cluster in a temporary folder on its own port.

    Stopping and starting it mid-run is the same event for the app as restarting the machine's
    PostgreSQL service, without disturbing anything else that uses that service.
    """

    def __init__(self, workdir: Path) -> None:
        self.bindir = Path(
            subprocess.run(
                ["pg_config", "--bindir"], capture_output=True, text=True, check=True
            ).stdout.strip()
        )
        if not (self.bindir / "initdb").exists():
            self.bindir = max(Path("/usr/lib/postgresql").glob("*/bin"))
        self.dir = workdir / "pgdata"
        self.port = free_port()
        self.url = f"postgresql://postgres@{LOOPBACK}:{self.port}/likeness_bench"
        self.admin_url = f"postgresql://postgres@{LOOPBACK}:{self.port}/postgres"
        self.log = workdir / "postgresql.log"
        self.started = False

    def _run(self, *args: str, timeout: float = 120.0) -> None:
        """Run a PostgreSQL program as the postgres user (it refuses to run as root)."""
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=timeout)

    def create(self) -> PrivateCluster:
        """Initialise the cluster, start it and create the bench database."""
        self.dir.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.dir.parent, "postgres")
            shutil.chown(self.dir, "postgres")
        self._run("initdb", "-D", str(self.dir), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.start()
        BenchDatabase("likeness_bench", self.admin_url).create()
        return self

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses={LOOPBACK} -c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(self.dir), "-o", options, "-l", str(self.log), "-w", "start")
        self.started = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (fast: roll back open transactions and close every connection)."""
        self._run("pg_ctl", "-D", str(self.dir), "-m", mode, "-w", "stop")
        self.started = False

    def destroy(self) -> None:
        """Stop the server if it runs and delete its folder."""
        if self.started:
            try:
                self.stop("immediate")
            except subprocess.SubprocessError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


def workdir(prefix: str) -> Path:
    """Return a new temporary folder for a run, writable by the postgres user too."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def prepare_database(url: str, media: str) -> None:
    """Recreate the bench database, migrate it and seed the demo study."""
    from flask_migrate import upgrade

    from survey import create_app
    from survey.config import database_uri
    from survey.demo import seed_demo
    from survey.extensions import db

    target = make_url(database_uri(url))
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "MEDIA_DIR": media})
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        seed_demo()
        db.session.remove()
        db.engine.dispose()


def backend_pids(url: str) -> list[int]:
    """Return the PostgreSQL server processes serving the bench database's clients."""
    from survey.config import database_uri

    engine = sa.create_engine(database_uri(url))
    with engine.connect() as conn:
        pids = conn.execute(
            sa.text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
        ).scalars()
        pids = list(pids)
    engine.dispose()
    return pids
