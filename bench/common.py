"""What the load and fault benchmarks share to run: serve the app, launch the participants,
gather a run's figures and its verdict."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.checks import (  # noqa: E402
    ORPHAN_QUERIES,
    DatabaseFacts,
    answer_problems,
    as_measures,
    balance_problems,
    database_problems,
    gap_problems,
    next_positions,
    read_facts,
)
from bench.db import (  # noqa: E402
    ADMIN_URL,
    SLUG,
    UNLIMITED_STARTS,
    BenchDatabase,
    PrivateCluster,
    app_env,
    flask,
    prepare_demo,
    workdir,
)
from bench.load import (  # noqa: E402
    ASSET,
    COMPLETION_CODE,
    DEFAULT_THINK_S,
    POSITION,
    TRY_AGAIN_TITLE,
    Behaviour,
    Client,
    GaveUp,
    Ledger,
    Pace,
    Participant,
    Reply,
    Unavailable,
    launch,
    warm_up,
    watch_lag,
)
from bench.report import (  # noqa: E402
    latency_table,
    machine,
    peak_rate,
    percentile,
    print_figures,
    summary,
    write_json,
)
from bench.servers import (  # noqa: E402
    LOOPBACK,
    Gunicorn,
    Redis,
    ServerSettings,
    alive,
    child_pids,
    free_port,
    request_kind,
    stop_session,
)

__all__ = [
    "ADMIN_URL",
    "ASSET",
    "COMPLETION_CODE",
    "DEFAULT_THINK_S",
    "LOOPBACK",
    "ORPHAN_QUERIES",
    "POSITION",
    "ROOT",
    "SLUG",
    "TRY_AGAIN_TITLE",
    "UNLIMITED_STARTS",
    "BenchDatabase",
    "Behaviour",
    "Client",
    "DatabaseFacts",
    "GaveUp",
    "Gunicorn",
    "Ledger",
    "Pace",
    "Participant",
    "PrivateCluster",
    "Redis",
    "Reply",
    "Run",
    "ServerSettings",
    "Unavailable",
    "alive",
    "answer_problems",
    "app_env",
    "as_measures",
    "balance_problems",
    "child_pids",
    "database_problems",
    "flask",
    "free_port",
    "gap_problems",
    "latency_table",
    "launch",
    "machine",
    "next_positions",
    "parse_run",
    "peak_rate",
    "percentile",
    "prepare_demo",
    "print_figures",
    "read_facts",
    "request_kind",
    "run_arguments",
    "run_figures",
    "run_participants",
    "serve_and_launch",
    "server_settings",
    "stop_on_sigterm",
    "stop_session",
    "summary",
    "verdict",
    "warm_up",
    "watch_lag",
    "workdir",
    "write_json",
]


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
        wall = run_participants(servers[0].port, args, behaviour, ledger, fault, servers)
        after = servers[-1].master_pid(), sorted(servers[-1].worker_pids())
        log = servers[-1].log_text()
    finally:
        for server in servers:
            server.stop()
    return Run(ledger, wall, log, servers[-1].server_times(), before, after)


def run_participants(
    port: int,
    args: argparse.Namespace,
    behaviour: Behaviour,
    ledger: Ledger,
    fault: Any | None = None,
    target: Any = None,
) -> float:
    """Run a run's participants against `port`; return the wall time.

    `fault`, when given, is a coroutine function run beside them, called with `target` (what it
    acts on: the servers) and the run's start time.
    """

    async def during(clock0: float) -> None:
        """Run the fault."""
        await fault(target, clock0)

    return asyncio.run(
        launch(
            args.participants,
            args.spread,
            port,
            behaviour,
            args.max_seconds,
            args.seed,
            ledger,
            during=during if fault is not None else None,
        )
    )


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
        "load_generator_lag": summary(ledger.loop_lag_ms),
        "errors": len(ledger.errors),
        "error_kinds": dict(ledger.error_kinds().most_common(8)),
    }


def run_arguments(doc: str, *, participants: int, seed: int) -> argparse.ArgumentParser:
    """Return a command line parser with the options every run shares (load, pace, server,
    output)."""
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
