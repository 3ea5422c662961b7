"""Shared pieces of the load and fault benchmarks: servers, bench databases, simulated participants
and the check of what the database holds against what every participant was told.

Everything runs on 127.0.0.1, every loop is bounded in count and time, and every process or
database a run makes is removed when it ends, on an exception too.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from bench.participants import UNLIMITED_STARTS, Client, Reply, free_port, percentile
from survey.participant.simulate import TOKEN, form_token, parse_trial_form

LOOPBACK = "127.0.0.1"
# The local server's administrative database: bench databases are created and dropped through it.
ADMIN_URL = os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")
SLUG = "demo"
COMPLETION_CODE = "LIKENESS-DEMO"
TRY_AGAIN_TITLE = "Please try again in a moment"
POSITION = re.compile(r'class="progress-text">\s*(\d+)\s*/\s*(\d+)')
ASSET = re.compile(r'<(?:img|script)[^>]*\ssrc="(/[^"]+)"|<link[^>]*\shref="(/static/[^"]+)"')
# Median seconds a simulated person spends on a page (reading, looking, deciding). The demo
# says it takes about five minutes: 39 pages, 7.7 s a page. Log-normal around 5 s (mean 5.7 s),
# the simulated participants finish in under four minutes, faster than the study expects.
DEFAULT_THINK_S = 5.0


# --- figures ----------------------------------------------------------------------------------


def latency_table(latencies: Mapping[str, Sequence[float]]) -> dict[str, dict[str, float]]:
    """Return n, p50, p99 and max in ms for every kind of request, and for all of them."""
    table = {}
    everything: list[float] = []
    for kind in sorted(latencies):
        values = latencies[kind]
        everything += values
        table[kind] = _summary(values)
    table["all requests"] = _summary(everything)
    return table


def _summary(values: Sequence[float]) -> dict[str, float]:
    """Return n, p50, p99 and max of one list of latencies."""
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 50), 1),
        "p99_ms": round(percentile(values, 99), 1),
        "max_ms": round(max(values), 1) if values else float("nan"),
    }


def peak_rate(times: Sequence[float], window: float = 10.0) -> float:
    """Return the highest number of events per second over any `window`-second span."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(ordered):
        while t - ordered[start] > window:
            start += 1
        best = max(best, end - start + 1)
    return best / window


def machine() -> dict[str, Any]:
    """Return the machine's size: cores, memory and the load average at the start."""
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(pages / 2**30, 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def print_figures(figures: Mapping[str, Any]) -> None:
    """Print a run's figures, one per line."""
    for key, value in figures.items():
        if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            print(f"{key}:")
            for name, row in value.items():
                print(f"    {name:22} " + "  ".join(f"{k} {v}" for k, v in row.items()))
        else:
            print(f"{key:34} {value}")


# --- the checks (pure: what participants were told against the database's rows) -------------


def answer_problems(
    acknowledged: Mapping[int, Mapping[str, str]],
    in_doubt: Mapping[int, Mapping[str, str]],
    stored: Iterable[tuple[int, str, str]],
) -> list[str]:
    """Compare the answers participants were told were saved with the stored response rows.

    `acknowledged` maps a trial id to the measures posted for it when the server answered with
    its redirect to the next trial; `in_doubt` the same for answers whose request died or got a
    try-again page (they may be stored, once, or not at all). `stored` holds (trial id, measure,
    value) rows. Every acknowledged answer must be stored with exactly its measures and values,
    nothing may be stored twice, and nothing may be stored that no participant sent.
    """
    rows: dict[int, dict[str, str]] = {}
    twice: set[tuple[int, str]] = set()
    for trial_id, measure, value in stored:
        measures = rows.setdefault(trial_id, {})
        if measure in measures:
            twice.add((trial_id, measure))
        measures[measure] = value
    problems = []
    missing = [t for t in acknowledged if t not in rows]
    if missing:
        problems.append(f"{len(missing)} acknowledged answers not stored (trials {_few(missing)})")
    differ = [t for t in acknowledged if t in rows and dict(rows[t]) != dict(acknowledged[t])]
    if differ:
        problems.append(
            f"{len(differ)} answers stored with other measures or values than posted "
            f"(trials {_few(differ)})"
        )
    if twice:
        problems.append(
            f"{len(twice)} (trial, measure) pairs stored more than once "
            f"(trials {_few(sorted({t for t, _ in twice}))})"
        )
    unsent = [t for t in rows if t not in acknowledged and t not in in_doubt]
    if unsent:
        problems.append(
            f"{len(unsent)} answers stored that no participant sent (trials {_few(unsent)})"
        )
    doubtful = [
        t for t in rows if t not in acknowledged and t in in_doubt and rows[t] != dict(in_doubt[t])
    ]
    if doubtful:
        problems.append(
            f"{len(doubtful)} unacknowledged answers stored with other values than "
            f"posted (trials {_few(doubtful)})"
        )
    return problems


def as_measures(posted: Mapping[str, str], left_source: str | None) -> dict[str, str]:
    """Return an answer form's fields as the measures stored for it.

    A rating scale's field `scale_<key>` is stored as `<key>`; a choice of side (left, right) is
    stored as the source of the headshot on that side.
    """
    measures = {}
    for name, value in posted.items():
        if name == "choice":
            other = "ai" if left_source == "real" else "real"
            value = left_source if value == "left" else other
        measures[name.removeprefix("scale_")] = value
    return measures


def balance_problems(list_counts: Mapping[int, int], n_lists: int, slack: int = 0) -> list[str]:
    """Check that the fewest-first assignment left every list within one participant of the others.

    `slack` widens the margin by the participants who withdrew (their places are given again
    only to later starts, so the lists can end that much further apart).
    """
    counts = [list_counts.get(index, 0) for index in range(n_lists)]
    stray = sorted(set(list_counts) - set(range(n_lists)))
    problems = []
    if stray:
        problems.append(f"participants on lists that do not exist: {stray}")
    if counts and max(counts) - min(counts) > 1 + slack:
        problems.append(f"lists unbalanced: {counts} participants per list")
    return problems


def gap_problems(answered: Mapping[int, Sequence[int]]) -> list[str]:
    """Check that each participant's answered positions are 1..k: no trial skipped on resume."""
    gaps = [
        p
        for p, positions in answered.items()
        if sorted(positions) != list(range(1, len(positions) + 1))
    ]
    if gaps:
        names = _few(gaps)
        return [
            f"{len(gaps)} participants with an unanswered trial before an answered one (participants {names})"
        ]
    return []


def next_positions(last_acknowledged: int, doubtful: Iterable[int]) -> set[int]:
    """Return the positions a resumed participant may be shown next.

    The trial after the last acknowledged one, or, when answers after it are in doubt (their
    request died), the trial after each of those that may have been stored in sequence.
    """
    allowed = {last_acknowledged + 1}
    position = last_acknowledged + 1
    pending = set(doubtful)
    while position in pending:
        position += 1
        allowed.add(position)
    return allowed


def _few(items: Sequence[Any], shown: int = 5) -> str:
    """Return the first few items of a list for a message."""
    items = list(items)
    more = f" … and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(str(i) for i in items[:shown]) + more


# --- the database side of the checks ----------------------------------------------------------

ORPHAN_QUERIES = {
    "responses whose trial is gone": (
        "SELECT count(*) FROM response r LEFT JOIN trial t ON t.id = r.trial_id WHERE t.id IS NULL"
    ),
    "responses filed under another participant than their trial's": (
        "SELECT count(*) FROM response r JOIN trial t ON t.id = r.trial_id "
        "WHERE r.participant_id <> t.participant_id"
    ),
    "responses to trials not marked answered": (
        "SELECT count(*) FROM response r JOIN trial t ON t.id = r.trial_id WHERE t.answered_at IS NULL"
    ),
    "trials marked answered without a response": (
        "SELECT count(*) FROM trial t WHERE t.answered_at IS NOT NULL "
        "AND NOT EXISTS (SELECT 1 FROM response r WHERE r.trial_id = t.id)"
    ),
    "trials whose participant is gone": (
        "SELECT count(*) FROM trial t LEFT JOIN participant p ON p.id = t.participant_id WHERE p.id IS NULL"
    ),
    "recruitment ids whose participant is gone": (
        "SELECT count(*) FROM recruitment_id x LEFT JOIN participant p ON p.id = x.participant_id "
        "WHERE p.id IS NULL"
    ),
    "participants started without a schedule": (
        "SELECT count(*) FROM participant p WHERE p.status <> 'withdrawn' "
        "AND NOT EXISTS (SELECT 1 FROM trial t WHERE t.participant_id = p.id)"
    ),
    "completed participants with unanswered trials": (
        "SELECT count(*) FROM participant p WHERE p.status = 'completed' "
        "AND EXISTS (SELECT 1 FROM trial t WHERE t.participant_id = p.id AND t.answered_at IS NULL)"
    ),
    "participants with every trial answered but not completed": (
        "SELECT count(*) FROM participant p WHERE p.status = 'in_progress' "
        "AND EXISTS (SELECT 1 FROM trial t WHERE t.participant_id = p.id) "
        "AND NOT EXISTS (SELECT 1 FROM trial t WHERE t.participant_id = p.id AND t.answered_at IS NULL)"
    ),
    "withdrawn participants with answers left": (
        "SELECT count(*) FROM participant p WHERE p.status = 'withdrawn' "
        "AND EXISTS (SELECT 1 FROM response r WHERE r.participant_id = p.id)"
    ),
}


@dataclass
class DatabaseFacts:
    """What the checks read from the database after a run (preview participants left out)."""

    stored: list[tuple[int, str, str]]
    list_counts: dict[int, int]
    n_lists: int
    answered: dict[int, list[int]]
    orphans: dict[str, int]
    statuses: dict[str, int]
    left_sources: dict[int, str]


def read_facts(url: str, slug: str = SLUG) -> DatabaseFacts:
    """Read the rows the checks need from the study's database."""
    from survey.config import database_uri

    engine = sa.create_engine(database_uri(url))
    try:
        with engine.connect() as conn:
            study_id, n_lists = conn.execute(
                sa.text("SELECT id, n_lists FROM study WHERE slug = :slug"), {"slug": slug}
            ).one()
            people = "SELECT id FROM participant WHERE study_id = :s AND NOT is_preview"
            stored = [
                tuple(row)
                for row in conn.execute(
                    sa.text(
                        f"SELECT trial_id, measure, value FROM response WHERE participant_id IN ({people})"
                    ),
                    {"s": study_id},
                )
            ]
            list_counts = dict(
                conn.execute(
                    sa.text(
                        "SELECT list_index, count(*) FROM participant WHERE study_id = :s AND NOT is_preview "
                        "AND status <> 'withdrawn' GROUP BY list_index"
                    ),
                    {"s": study_id},
                ).all()
            )
            answered: dict[int, list[int]] = {}
            for participant_id, position in conn.execute(
                sa.text(
                    f"SELECT participant_id, position FROM trial WHERE answered_at IS NOT NULL "
                    f"AND participant_id IN ({people})"
                ),
                {"s": study_id},
            ):
                answered.setdefault(participant_id, []).append(position)
            orphans = {
                name: conn.execute(sa.text(sql)).scalar_one()
                for name, sql in ORPHAN_QUERIES.items()
            }
            left_sources = dict(
                conn.execute(
                    sa.text(
                        f"SELECT id, left_source FROM trial WHERE left_source IS NOT NULL "
                        f"AND participant_id IN ({people})"
                    ),
                    {"s": study_id},
                ).all()
            )
            statuses = dict(
                conn.execute(
                    sa.text(
                        "SELECT status, count(*) FROM participant WHERE study_id = :s AND NOT is_preview "
                        "GROUP BY status"
                    ),
                    {"s": study_id},
                ).all()
            )
    finally:
        engine.dispose()
    return DatabaseFacts(stored, list_counts, n_lists, answered, orphans, statuses, left_sources)


def database_problems(facts: DatabaseFacts, ledger: Ledger) -> list[str]:
    """Run every check of a run's database against what its participants were told."""

    def stored_form(answers: Mapping[int, Mapping[str, str]]) -> dict[int, dict[str, str]]:
        """Return posted answers as the measures they are stored as."""
        return {t: as_measures(posted, facts.left_sources.get(t)) for t, posted in answers.items()}

    problems = answer_problems(
        stored_form(ledger.acknowledged), stored_form(ledger.in_doubt), facts.stored
    )
    problems += balance_problems(
        facts.list_counts, facts.n_lists, facts.statuses.get("withdrawn", 0)
    )
    problems += gap_problems(facts.answered)
    problems += [f"{n} {name}" for name, n in facts.orphans.items() if n]
    return problems


# --- servers ----------------------------------------------------------------------------------


def child_pids(pid: int) -> list[int]:
    """Return the ids of a process's direct children (its gunicorn workers)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def alive(pid: int) -> bool:
    """Tell whether a process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass
class ServerSettings:
    """How gunicorn serves Likeness in a run."""

    workers: int = 4
    worker_class: str = "gthread"
    threads: int = 4

    def describe(self) -> str:
        """Return the settings in a few words."""
        threads = f" x {self.threads} threads" if self.worker_class == "gthread" else ""
        return f"gunicorn {self.worker_class}, {self.workers} workers{threads}"


class Gunicorn:
    """gunicorn serving Likeness (app:app) on 127.0.0.1 in its own session, so it can be killed whole."""

    def __init__(
        self,
        env: Mapping[str, str],
        settings: ServerSettings,
        log: Path,
        port: int | None = None,
        target: str = "app:app",
    ) -> None:
        self.env = dict(env)
        self.target = target
        self.settings = settings
        self.log = log
        self.access_log = log.with_suffix(".access")
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> Gunicorn:
        """Start the master and its workers and wait until every worker answers."""
        s = self.settings
        args = [
            sys.executable,
            "-m",
            "gunicorn",
            "--chdir",
            str(ROOT),
            "--bind",
            f"{LOOPBACK}:{self.port}",
            "--workers",
            str(s.workers),
            "--worker-class",
            s.worker_class,
            "--backlog",
            "2048",
            "--log-level",
            "warning",
            "--error-logfile",
            "-",
            # Each request's method, path, status and time inside gunicorn, in microseconds.
            "--access-logfile",
            str(self.access_log),
            "--access-logformat",
            "%(m)s %(U)s %(s)s %(D)s",
        ]
        if s.worker_class == "gthread":
            args += ["--threads", str(s.threads)]
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(
                args + [self.target],
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        """Wait until the server answers and all its workers are up."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}; see {self.log}")
            if len(self.worker_pids()) >= self.settings.workers and self._answers():
                return
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer within {timeout:.0f} s; see {self.log}")

    def _answers(self) -> bool:
        """Tell whether the server answers an HTTP request."""
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=2) as conn:
                conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                return conn.recv(12).startswith(b"HTTP/1.")
        except OSError:
            return False

    def master_pid(self) -> int | None:
        """Return the master's process id while it runs."""
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def worker_pids(self) -> list[int]:
        """Return the workers' process ids."""
        return child_pids(self.proc.pid) if self.proc is not None else []

    def kill9(self) -> list[int]:
        """SIGKILL the master and every worker at once, as a crash would; return their ids."""
        pids = ([self.proc.pid] if self.master_pid() else []) + self.worker_pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._reap(pids)
        return pids

    def _reap(self, pids: Sequence[int], timeout: float = 10.0) -> None:
        """Wait for the master to be reaped and every worker to be gone."""
        if self.proc is not None:
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        end = time.monotonic() + timeout
        while any(alive(pid) for pid in pids) and time.monotonic() < end:
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop gracefully (SIGTERM), then kill whatever is left of its session."""
        if self.proc is None:
            return
        pids = [self.proc.pid] + self.worker_pids()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for pid in pids:
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self._reap(pids)
        self.proc = None

    def log_text(self) -> str:
        """Return what the server wrote to its log."""
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def server_times(self) -> dict[str, list[float]]:
        """Return the time each request spent inside gunicorn, in ms, by kind of request."""
        times: dict[str, list[float]] = {}
        try:
            lines = self.access_log.read_text(errors="replace").splitlines()
        except OSError:
            return times
        for line in lines:
            parts = line.split()
            if len(parts) == 4 and parts[3].isdigit():
                kind = request_kind(parts[0], parts[1])
                times.setdefault(kind, []).append(int(parts[3]) / 1000)
        return times


def request_kind(method: str, path: str) -> str:
    """Name the kind of a participant's request as the load generator does."""
    if path.startswith("/img/"):
        return "image"
    if path.startswith("/static/"):
        return "static"
    page = path.rstrip("/").rsplit("/", 1)[-1]
    if "/trial/" in path:
        return "answer"
    if page in ("trial", "consent", "instructions", "questions", "done", "withdraw"):
        return "trial page" if page == "trial" else page
    return "link" if path.startswith("/s/") else "other"


# --- databases --------------------------------------------------------------------------------


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


# --- simulated participants -------------------------------------------------------------------


@dataclass
class Pace:
    """How fast simulated people move: log-normal thinking time per page around a median."""

    median_s: float = DEFAULT_THINK_S
    spread: float = 0.5

    def draw(self, rng: random.Random) -> float:
        """Return one thinking time in seconds (0 when the median is 0: a stress run)."""
        return 0.0 if self.median_s <= 0 else self.median_s * math.exp(rng.gauss(0.0, self.spread))


@dataclass
class Behaviour:
    """What simulated participants do besides answering, and how they meet an outage."""

    pace: Pace = field(default_factory=Pace)
    assets: bool = True
    # Shares of participants who fill in the optional questions, and who withdraw mid-way.
    demographics: float = 0.0
    withdraw: float = 0.0
    # During a fault a person reloads until the study answers again, for at most this long.
    patience_s: float = 0.0
    # Share of in-doubt answers the browser sends again after the outage (form resubmission).
    resubmit: float = 0.5


@dataclass
class Ledger:
    """Everything the participants were told, for the figures and the database check."""

    acknowledged: dict[int, dict[str, str]] = field(default_factory=dict)
    in_doubt: dict[int, dict[str, str]] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    answer_times: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    outage: Counter = field(default_factory=Counter)
    outage_times: list[float] = field(default_factory=list)
    loop_lag_ms: list[float] = field(default_factory=list)
    resumes: int = 0
    # Participants who met a failed request (a fault's outage) at least once.
    interrupted: set[int] = field(default_factory=set)
    warm_up_answers: int = 0
    started: int = 0
    completed: int = 0
    withdrawn: int = 0
    stopped: int = 0

    def error(self, index: int, message: str) -> None:
        """Record something a participant should never have met."""
        self.errors.append(f"participant {index}: {message}")

    def error_kinds(self) -> Counter:
        """Count the errors by kind (their text without the participant and numbers)."""
        return Counter(re.sub(r"\d+", "#", e.split(": ", 1)[1])[:90] for e in self.errors)


class Unavailable(Exception):
    """The server could not be reached, or answered with its try-again page."""


class GaveUp(Exception):
    """A participant stopped: the run's deadline passed, or the study stayed unavailable too long."""


class Participant:
    """One simulated person with a browser: a connection, a cookie jar and an image cache."""

    def __init__(
        self,
        index: int,
        run: str,
        port: int,
        ledger: Ledger,
        behaviour: Behaviour,
        rng: random.Random,
        deadline: float,
        clock0: float,
    ) -> None:
        self.index = index
        self.query = f"?PROLIFIC_PID=BENCH{run}x{index}&STUDY_ID=bench&SESSION_ID=s{index}"
        self.client = Client(LOOPBACK, port)
        self.ledger = ledger
        self.behaviour = behaviour
        self.rng = rng
        self.deadline = deadline
        self.clock0 = clock0
        self.cached: set[str] = set()
        self.last_acknowledged = 0
        self.doubtful: set[int] = set()
        # Trials this participant answered (or may have): forgotten again if they withdraw.
        self.posted: list[int] = []

    # -- requests --

    async def send(
        self, kind: str, method: str, path: str, form: dict[str, str] | None = None
    ) -> Reply:
        """Send one request and time it; raise Unavailable on a dead connection or a try-again page."""
        if time.perf_counter() > self.deadline:
            raise GaveUp("the run's time ran out")
        start = time.perf_counter()
        try:
            reply = await self.client.request(method, path, form)
        except (OSError, asyncio.IncompleteReadError) as exc:
            await self.client.close()
            self._outage(type(exc).__name__)
            raise Unavailable(type(exc).__name__) from exc
        self.ledger.latencies.setdefault(kind, []).append((time.perf_counter() - start) * 1000)
        if reply.status == 503:
            self._check_try_again(reply, f"{method} {kind}")
            self._outage("503 try-again page")
            raise Unavailable("503")
        if reply.status >= 500 or "Traceback" in reply.text:
            self.ledger.error(
                self.index, f"{method} {kind}: HTTP {reply.status} {_title(reply.text)}"
            )
        return reply

    def _outage(self, what: str) -> None:
        """Count a failed request and when it happened."""
        self.ledger.interrupted.add(self.index)
        self.ledger.outage[what] += 1
        self.ledger.outage_times.append(time.perf_counter() - self.clock0)

    def _check_try_again(self, reply: Reply, where: str) -> None:
        """Check that a 503 is the clear try-again page: title, Retry-After, no trace."""
        text = reply.text
        if TRY_AGAIN_TITLE not in text or "retry-after" not in reply.headers or "Traceback" in text:
            self.ledger.error(
                self.index, f"{where}: a 503 that is not the try-again page: {_title(text)}"
            )

    async def patiently(
        self, kind: str, method: str, path: str, form: dict[str, str] | None = None
    ) -> Reply:
        """Send a request, reloading it through an outage like a patient person (GETs only)."""
        give_up = time.perf_counter() + self.behaviour.patience_s
        wait = 0.25
        while True:
            try:
                return await self.send(kind, method, path, form)
            except Unavailable:
                if time.perf_counter() + wait > give_up:
                    raise GaveUp(f"{path} stayed unavailable") from None
                await asyncio.sleep(wait)
                wait = min(wait * 2, 2.0)

    async def think(self) -> None:
        """Read and decide, or stop when the run's time is up."""
        pause = self.behaviour.pace.draw(self.rng)
        if time.perf_counter() + pause > self.deadline:
            raise GaveUp("the run's time ran out")
        if pause:
            await asyncio.sleep(pause)

    async def assets(self, page: Reply) -> None:
        """Fetch a page's images, style sheets and scripts a browser has not cached yet."""
        if not self.behaviour.assets:
            return
        for img, link in ASSET.findall(page.text):
            url = img or link
            if url in self.cached:
                continue
            reply = await self.patiently(
                "image" if url.startswith("/img/") else "static", "GET", url
            )
            if reply.status != 200:
                self.ledger.error(self.index, f"GET {url}: HTTP {reply.status}")
            self.cached.add(url)

    # -- the flow --

    async def run(self) -> None:
        """Take part from the study link to the debrief; record what happened."""
        ledger = self.ledger
        try:
            await self._take_part()
        except GaveUp as exc:
            ledger.stopped += 1
            ledger.error(self.index, f"stopped: {exc}")
        except Unavailable as exc:
            ledger.error(self.index, f"the study was unavailable outside an outage ({exc})")
        except (ValueError, KeyError, AttributeError) as exc:
            ledger.error(self.index, f"{type(exc).__name__}: {exc}")
        finally:
            await self.client.close()

    async def _take_part(self) -> None:
        """The participant's path through the study."""
        ledger = self.ledger
        page = await self.patiently("link", "GET", f"/s/{SLUG}{self.query}")
        if page.status != 200 or "token" not in page.text:
            ledger.error(self.index, f"study link: HTTP {page.status} {_title(page.text)}")
            return
        await self.assets(page)
        await self.think()
        token = TOKEN.search(page.text)
        form = {
            "csrf_token": form_token(page.text) or "",
            "token": token.group(1) if token else "",
            "agree": "1",
        }
        started = await self.patiently("consent", "POST", f"/s/{SLUG}/consent{self.query}", form)
        if started.status != 303:
            ledger.error(self.index, f"consent: HTTP {started.status} {_title(started.text)}")
            return
        ledger.started += 1
        page = await self.patiently("instructions", "GET", started.headers["location"])
        await self.think()
        withdraw_at = (
            self.rng.randint(2, 30) if self.rng.random() < self.behaviour.withdraw else None
        )
        page = await self.patiently("trial page", "GET", f"/s/{SLUG}/trial")
        while page.status == 200:
            position = self._check_position(page)
            if position == withdraw_at:
                await self._withdraw()
                return
            await self.assets(page)
            await self.think()
            page = await self._answer(page, position)
        if page.status not in (302, 303):
            ledger.error(self.index, f"after the trials: HTTP {page.status} {_title(page.text)}")
            return
        if page.headers.get("location", "").endswith("/questions"):
            await self._questions()
        done = await self.patiently("done", "GET", f"/s/{SLUG}/done")
        if done.status == 200 and COMPLETION_CODE in done.text:
            ledger.completed += 1
        else:
            ledger.error(self.index, f"debrief: HTTP {done.status} {_title(done.text)}")

    def _check_position(self, page: Reply) -> int:
        """Read a trial page's position and check it is where this participant should be."""
        found = POSITION.search(page.text)
        if found is None:
            raise ValueError("a trial page without its position")
        position = int(found.group(1))
        allowed = next_positions(self.last_acknowledged, self.doubtful)
        if position not in allowed:
            self.ledger.error(
                self.index, f"shown trial {position}, expected one of {sorted(allowed)}"
            )
        return position

    async def _answer(self, page: Reply, position: int) -> Reply:
        """Answer the trial on `page`; return the next trial page (or the redirect after the last)."""
        form = parse_trial_form(page.text)
        if form is None:
            raise ValueError("a trial page without its form")
        trial_id = int(form.action.rsplit("/", 1)[1])
        answer = {name: self.rng.choice(values) for name, values in form.choices.items()}
        posted = dict(answer)
        self.posted.append(trial_id)
        answer.update(form.hidden, rt_ms=f"{self.rng.uniform(400, 3000):.1f}")
        try:
            reply = await self.send("answer", "POST", form.action, answer)
        except Unavailable:
            reply = await self._after_doubt(trial_id, position, posted, form.action, answer)
        if reply is not None:
            if reply.status != 303:
                self.ledger.error(self.index, f"answer: HTTP {reply.status} {_title(reply.text)}")
                raise GaveUp("an answer was refused")
            self._acknowledge(trial_id, position, posted)
        return await self.patiently("trial page", "GET", f"/s/{SLUG}/trial")

    def _acknowledge(self, trial_id: int, position: int, posted: dict[str, str]) -> None:
        """Note an answer the server confirmed with its redirect."""
        self.ledger.acknowledged[trial_id] = posted
        self.ledger.in_doubt.pop(trial_id, None)
        self.ledger.answer_times.append(time.perf_counter() - self.clock0)
        self.last_acknowledged = position
        self.doubtful.discard(position)

    async def _after_doubt(
        self,
        trial_id: int,
        position: int,
        posted: dict[str, str],
        action: str,
        answer: dict[str, str],
    ) -> Reply | None:
        """After an answer whose request died: maybe resubmit it, else resume from the study page."""
        self.ledger.in_doubt[trial_id] = posted
        self.doubtful.add(position)
        self.ledger.resumes += 1
        if self.behaviour.patience_s <= 0:
            raise GaveUp("the server went away")
        if self.rng.random() < self.behaviour.resubmit:
            return await self.patiently("answer", "POST", action, answer)
        return None

    async def _questions(self) -> None:
        """Fill in or skip the optional questions."""
        page = await self.patiently("questions", "GET", f"/s/{SLUG}/questions")
        await self.think()
        form = {"csrf_token": form_token(page.text) or ""}
        if self.rng.random() < self.behaviour.demographics:
            form.update(
                age=str(self.rng.randint(18, 80)),
                gender=self.rng.choice(["woman", "man", "non_binary"]),
                save="1",
            )
        else:
            form["skip"] = "1"
        reply = await self.patiently("questions", "POST", f"/s/{SLUG}/questions", form)
        if reply.status != 303:
            self.ledger.error(self.index, f"questions: HTTP {reply.status} {_title(reply.text)}")

    async def _withdraw(self) -> None:
        """Withdraw: confirm on the withdraw page; the answers given so far are deleted."""
        page = await self.patiently("withdraw", "GET", f"/s/{SLUG}/withdraw")
        form = {"csrf_token": form_token(page.text) or "", "confirm": "1"}
        reply = await self.patiently("withdraw", "POST", f"/s/{SLUG}/withdraw", form)
        if reply.status != 303:
            self.ledger.error(self.index, f"withdraw: HTTP {reply.status} {_title(reply.text)}")
            return
        # Their answers are deleted by design: nothing of theirs is expected in the database.
        for trial_id in self.posted:
            self.ledger.acknowledged.pop(trial_id, None)
            self.ledger.in_doubt.pop(trial_id, None)
        self.ledger.withdrawn += 1


def _title(text: str) -> str:
    """Return a page's <title> (or its first characters) for an error message."""
    found = re.search(r"<title>(.*?)</title>", text, re.DOTALL)
    return (found.group(1) if found else text[:120]).strip()


def warm_up(port: int, ledger: Ledger, n: int = 8, seed: int = 0) -> None:
    """Take a few participants through the study at full speed before a run's clock starts.

    A study opens on a server that has served pages before (the researcher's preview runs):
    each worker has compiled its templates and opened its database connections. Their answers
    join `ledger` for the database check; their timings and counts do not.
    """
    scratch = Ledger()
    behaviour = Behaviour(pace=Pace(0.0))
    asyncio.run(launch(n, 0.5, port, behaviour, 120.0, seed, scratch, run="warmup"))
    if scratch.errors:
        raise RuntimeError(f"the warm-up failed: {scratch.errors[:3]}")
    ledger.acknowledged.update(scratch.acknowledged)
    ledger.warm_up_answers = len(scratch.acknowledged)


async def launch(
    n: int,
    spread_s: float,
    port: int,
    behaviour: Behaviour,
    max_seconds: float,
    seed: int,
    ledger: Ledger,
    during: Any | None = None,
    run: str = "",
) -> float:
    """Start `n` participants at random moments within `spread_s` seconds; return the wall time.

    `during`, when given, is a coroutine function run beside the participants (a fault), called
    with the run's start time.
    """
    rng = random.Random(seed)
    run = run or f"{seed:x}{int(time.time()) % 100000:x}"
    clock0 = time.perf_counter()
    deadline = clock0 + max_seconds
    arrivals = sorted(rng.uniform(0, spread_s) for _ in range(n))

    async def arrive(index: int, at: float) -> None:
        """Wait for this participant's moment, then take part."""
        await asyncio.sleep(max(0.0, clock0 + at - time.perf_counter()))
        person = Participant(
            index, run, port, ledger, behaviour, random.Random(rng.random()), deadline, clock0
        )
        await person.run()

    tasks = [arrive(i, at) for i, at in enumerate(arrivals)]
    if during is not None:
        tasks.append(during(clock0))
    people = asyncio.gather(*tasks)
    await asyncio.gather(people, watch_lag(people, ledger))
    return time.perf_counter() - clock0


async def watch_lag(until: asyncio.Future, ledger: Ledger, every: float = 0.05) -> None:
    """Record how late the load generator's own loop wakes up, until `until` is done.

    On a busy machine the generator itself waits for a core: that delay is inside every
    latency it measures, and this says how large it was.
    """
    while not until.done():
        start = time.perf_counter()
        await asyncio.sleep(every)
        ledger.loop_lag_ms.append((time.perf_counter() - start - every) * 1000)


@dataclass
class Run:
    """What a run left behind: the ledger, its wall time, the server log and process ids."""

    ledger: Ledger
    wall: float
    log: str
    # Time inside gunicorn per kind of request (the participants' latency less the queueing).
    server_times: dict[str, list[float]]
    # (master, sorted workers) when the participants started and when they were all done.
    pids_before: tuple[int | None, list[int]]
    pids_after: tuple[int | None, list[int]]


def serve_and_launch(
    env: Mapping[str, str],
    args: argparse.Namespace,
    work: Path,
    behaviour: Behaviour,
    fault: Any | None = None,
) -> Run:
    """Serve the app with gunicorn, warm it up, run the participants, stop every server.

    `fault`, when given, is a coroutine function called with the list of servers (it may kill
    the last and append a replacement) and the run's start time; it runs beside the participants.
    """
    servers = [Gunicorn(env, server_settings(args), work / "gunicorn.log")]
    try:
        servers[0].start()
        ledger = Ledger()
        warm_up(servers[0].port, ledger)
        servers[0].access_log.write_text("")  # the run's timings only, not the warm-up's
        before = servers[0].master_pid(), sorted(servers[0].worker_pids())
        print(
            f"{args.participants} participants arriving within {args.spread:.0f} s, "
            f"{server_settings(args).describe()} …",
            flush=True,
        )

        async def during(clock0: float) -> None:
            """Run the fault with the current list of servers."""
            await fault(servers, clock0)

        wall = asyncio.run(
            launch(
                args.participants,
                args.spread,
                servers[0].port,
                behaviour,
                args.max_seconds,
                args.seed,
                ledger,
                during=during if fault is not None else None,
            )
        )
        after = servers[-1].master_pid(), sorted(servers[-1].worker_pids())
        log = servers[-1].log_text()
    finally:
        for server in servers:
            server.stop()
    return Run(ledger, wall, log, servers[-1].server_times(), before, after)


def verdict(
    figures: dict[str, Any], run: Run, problems: list[str], passed: bool, goal: str
) -> bool:
    """Add the log and database findings and the goal's verdict to the figures; tell if met."""
    figures["server_log_tracebacks"] = run.log.count("Traceback")
    figures["database_check"] = problems or (
        "every acknowledged answer stored exactly once, nothing stored twice, "
        "lists balanced, no orphan rows"
    )
    met = passed and not run.ledger.errors and not problems and not figures["server_log_tracebacks"]
    figures["goal"] = f"{goal}: " + ("met" if met else "NOT met")
    print_figures(figures)
    for error in run.ledger.errors[:10]:
        print("error:", error)
    print(flush=True)
    return met


# --- a run's figures --------------------------------------------------------------------------


def run_figures(
    run: Run, args: argparse.Namespace, behaviour: Behaviour, at_start: Mapping[str, Any]
) -> dict[str, Any]:
    """Return the figures every run reports: who finished, how fast, what failed."""
    ledger, wall = run.ledger, run.wall
    return {
        "machine": {**at_start, "load_average_1m_at_end": round(os.getloadavg()[0], 2)},
        "server": server_settings(args).describe(),
        "participants": args.participants,
        "think_median_s": behaviour.pace.median_s,
        "images_and_static_fetched": behaviour.assets,
        "started": ledger.started,
        "completed": ledger.completed,
        "withdrew": ledger.withdrawn,
        "stopped_early": ledger.stopped,
        "wall_s": round(wall, 1),
        "answers_acknowledged": len(ledger.answer_times),
        "warm_up_answers_before_the_clock": ledger.warm_up_answers,
        "answers_per_s": round(len(ledger.answer_times) / wall, 1) if wall else 0.0,
        "answers_per_s_peak_10s": round(peak_rate(ledger.answer_times), 1),
        "requests": sum(len(v) for v in ledger.latencies.values()),
        "latency": latency_table(ledger.latencies),
        "time_inside_gunicorn": latency_table(run.server_times),
        "load_generator_lag": _summary(ledger.loop_lag_ms),
        "errors": len(ledger.errors),
        "error_kinds": dict(ledger.error_kinds().most_common(8)),
    }


def run_arguments(doc: str, *, participants: int, seed: int) -> argparse.ArgumentParser:
    """Return a command line parser with the options every run shares: load, pace, server, output."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=participants)
    parser.add_argument("--spread", type=float, default=60.0, help="seconds over which they arrive")
    parser.add_argument(
        "--think",
        type=float,
        default=DEFAULT_THINK_S,
        help="median thinking time per page in seconds (0: a stress run)",
    )
    parser.add_argument("--max-seconds", type=float, default=900.0, help="hard end of the run")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--worker-class", default="gthread", choices=("sync", "gthread"))
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seed", type=int, default=seed)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    return parser


def parse_run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse and bound a run's options (every run is bounded in count and time)."""
    args = parser.parse_args(argv)
    if (
        not 1 <= args.participants <= 5000
        or not 0 < args.spread <= 600
        or not 0 < args.max_seconds <= 3600
    ):
        parser.error("--participants must be 1-5000, --spread 0-600 s and --max-seconds 0-3600 s")
    if not 1 <= args.workers <= 16 or not 1 <= args.threads <= 32 or args.think < 0:
        parser.error("--workers must be 1-16, --threads 1-32 and --think at least 0")
    return args


def server_settings(args: argparse.Namespace) -> ServerSettings:
    """Return the gunicorn settings a run's options ask for."""
    return ServerSettings(args.workers, args.worker_class, args.threads)


def stop_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so a stopped run still cleans up its servers and database."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def write_json(path: Path | None, figures: Mapping[str, Any]) -> None:
    """Write the figures as JSON when a path was given."""
    if path is not None:
        import json

        path.write_text(json.dumps(figures, indent=2, default=str) + "\n")
