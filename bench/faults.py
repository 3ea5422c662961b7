"""Faults in the middle of a launch spike: gunicorn killed with SIGKILL, PostgreSQL restarted."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

# A person who meets an error page reloads for up to two minutes before giving up.
PATIENCE_S = 120.0


class SystemCluster:
    """The machine's PostgreSQL service, stopped and started with pg_ctlcluster."""

    def __init__(self) -> None:
        self.version = max(p.name for p in Path("/etc/postgresql").iterdir())

    def _ctl(self, action: str) -> None:
        """Run one pg_ctlcluster action on the main cluster."""
        command = ["pg_ctlcluster", "--skip-systemctl-redirect", self.version, "main", action]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def stop(self, mode: str = "fast") -> None:
        """Stop the service (pg_ctlcluster's default is the fast mode)."""
        self._ctl("stop")

    def start(self) -> None:
        """Start the service."""
        self._ctl("start")


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Read the command line."""
    parser = common.run_arguments(__doc__, participants=1000, seed=2)
    parser.add_argument("--only", choices=("gunicorn", "postgres"), help="run one fault only")
    parser.add_argument("--fault-at", type=float, default=45.0, help="seconds into the run")
    parser.add_argument("--down", type=float, default=5.0, help="seconds the server stays down")
    parser.add_argument(
        "--system-cluster",
        action="store_true",
        help="restart the machine's PostgreSQL instead of a private cluster",
    )
    parser.add_argument("--admin-url", default=common.ADMIN_URL)
    args = common.parse_run(parser, argv)
    if not 0 < args.fault_at < args.max_seconds or not 0 <= args.down <= 120:
        parser.error("--fault-at must fall inside the run and --down be 0-120 s")
    return args


def behaviour(args: argparse.Namespace) -> common.Behaviour:
    """Return how the participants of a fault run behave: they reload through the outage."""
    return common.Behaviour(pace=common.Pace(args.think), patience_s=PATIENCE_S)


async def wait_until(clock0: float, seconds: float) -> None:
    """Sleep until `seconds` into the run."""
    await asyncio.sleep(max(0.0, clock0 + seconds - time.perf_counter()))


def since(clock0: float) -> float:
    """Return the seconds since the run started, rounded for the figures."""
    return round(time.perf_counter() - clock0, 1)


def kill_gunicorn(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The gunicorn fault: SIGKILL master and workers mid-run, start a new server on the port."""
    database = common.BenchDatabase(f"likeness_bench_faults_{os.getpid()}", args.admin_url)
    facts: dict[str, Any] = {"machine": common.machine()}
    try:
        database.create()
        env = common.app_env(database.url, work)
        common.prepare_demo(env)

        async def fault(servers: list[common.Gunicorn], clock0: float) -> None:
            await wait_until(clock0, args.fault_at)
            facts["fault_at_s"] = since(clock0)
            killed = servers[-1].kill9()
            facts["processes_killed"] = len(killed)
            facts["processes_left_alive"] = sum(1 for pid in killed if common.alive(pid))
            await asyncio.sleep(args.down)
            servers.append(
                common.Gunicorn(env, servers[-1].settings, servers[-1].log, servers[-1].port)
            )
            await asyncio.to_thread(servers[-1].start)
            facts["serving_again_at_s"] = since(clock0)

        run = common.serve_and_launch(env, args, work, behaviour(args), fault)
        problems = common.database_problems(common.read_facts(database.url), run.ledger)
    finally:
        database.drop()
    facts["answers_acknowledged_before_the_kill"] = acknowledged_before(run, facts)
    killed_all = (
        facts.get("processes_left_alive") == 0 and facts.get("processes_killed", 0) > args.workers
    )
    return report("gunicorn SIGKILL", args, run, facts, problems, killed_all)


def restart_postgres(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The PostgreSQL fault: stop the database mid-run, start it again; the app runs on."""
    facts: dict[str, Any] = {"machine": common.machine()}
    with restartable_database(args, work, "likeness_bench_faults") as (url, cluster):
        env = common.app_env(url, work)
        common.prepare_demo(env)
        run = common.serve_and_launch(
            env, args, work, behaviour(args), restart(cluster, args, facts)
        )
        problems = common.database_problems(common.read_facts(url), run.ledger)
    passed = recovered(run, facts)
    return report("PostgreSQL restart", args, run, facts, problems, passed)


@contextmanager
def restartable_database(
    args: argparse.Namespace, work: Path, name: str
) -> Iterator[tuple[str, Any]]:
    """Yield the URL of a database on a server the run may stop and start, and that server.

    A private cluster in `work` by default; with --system-cluster a bench database named
    `name`_<pid> on the machine's PostgreSQL. Dropped or destroyed afterwards.
    """
    database: common.BenchDatabase | None = None
    cluster: Any = None
    try:
        if args.system_cluster:
            cluster = SystemCluster()
            database = common.BenchDatabase(f"{name}_{os.getpid()}", args.admin_url).create()
            yield database.url, cluster
        else:
            cluster = common.PrivateCluster(work).create()
            yield cluster.url, cluster
    finally:
        if database is not None:
            database.drop()
        if isinstance(cluster, common.PrivateCluster):
            cluster.destroy()


def restart(cluster: Any, args: argparse.Namespace, facts: dict[str, Any]) -> Any:
    """Return the fault that stops `cluster` at --fault-at s and starts it --down s later.

    The fault is called with the run's servers (left alone) and its start time.
    """

    async def fault(_servers: Any, clock0: float) -> None:
        await wait_until(clock0, args.fault_at)
        facts["fault_at_s"] = since(clock0)
        await asyncio.to_thread(cluster.stop, "fast")
        facts["database_down_at_s"] = since(clock0)
        await asyncio.sleep(args.down)
        await asyncio.to_thread(cluster.start)
        facts["database_up_at_s"] = since(clock0)

    return fault


def recovered(run: common.Run, facts: dict[str, Any]) -> bool:
    """Note how a run met the database restart; tell whether the same server processes served
    on after it and the outage showed try-again pages."""
    facts["same_server_processes_after"] = run.pids_before == run.pids_after
    facts["answers_acknowledged_before_the_stop"] = acknowledged_before(run, facts)
    facts["try_again_pages_seen"] = run.ledger.outage.get("503 try-again page", 0)
    return facts["same_server_processes_after"] and facts["try_again_pages_seen"] > 0


def acknowledged_before(run: common.Run, facts: dict[str, Any]) -> int:
    """Return how many answers were acknowledged before the fault."""
    moment = facts.get("fault_at_s", 0.0)
    return sum(1 for t in run.ledger.answer_times if t < moment)


def report(
    name: str,
    args: argparse.Namespace,
    run: common.Run,
    facts: dict[str, Any],
    problems: list[str],
    passed: bool,
) -> dict[str, Any]:
    """Return (and print) a fault run's figures with its verdict."""
    ledger = run.ledger
    at_start = facts.pop("machine")
    figures = {"fault": name, **common.run_figures(run, args, behaviour(args), at_start)}
    figures.update(facts)
    figures["failed_requests_during_the_fault"] = dict(ledger.outage)
    if ledger.outage_times:
        figures["failures_between_s"] = [
            round(min(ledger.outage_times), 1),
            round(max(ledger.outage_times), 1),
        ]
    # An answer whose request died or met the try-again page: the participant then resubmitted
    # it or reloaded the study page; those never confirmed stay in doubt (stored once or not).
    figures["participants_interrupted"] = len(ledger.interrupted)
    figures["answer_requests_lost"] = ledger.resumes
    figures["answers_never_confirmed"] = len(ledger.in_doubt)
    goal = "acknowledged answers kept, resumed at the next trial, nothing twice"
    figures["verdict"] = (
        "passed" if common.verdict(figures, run, problems, passed, goal) else "FAILED"
    )
    return figures


def main(argv: list[str] | None = None) -> int:
    """Run the chosen faults; exit 1 when one fails."""
    args = parse(argv)
    common.stop_on_sigterm()
    results = []
    for name, fault in (("gunicorn", kill_gunicorn), ("postgres", restart_postgres)):
        if args.only not in (None, name):
            continue
        print(f"== {name}: fault at {args.fault_at:.0f} s for {args.down:.0f} s", flush=True)
        work = common.workdir(f"likeness-faults-{name}-")
        try:
            results.append(fault(args, work))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    common.write_json(args.json, {r["fault"]: r for r in results})
    return 0 if all(r["verdict"] == "passed" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
