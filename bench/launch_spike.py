"""Launch spike: 1,000 simulated participants start the demo study within one minute."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

GOAL_P99_MS = 250.0


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Read the command line."""
    parser = common.run_arguments(__doc__, participants=1000, seed=1)
    parser.add_argument("--no-assets", action="store_true", help="fetch no images or static files")
    parser.add_argument(
        "--database", default=f"likeness_bench_{os.getpid()}", help="bench database name"
    )
    parser.add_argument("--admin-url", default=common.ADMIN_URL)
    return common.parse_run(parser, argv)


def main(argv: list[str] | None = None) -> int:
    """Run the spike, check the database, print the figures; exit 1 when a goal is missed."""
    args = parse(argv)
    common.stop_on_sigterm()
    at_start = common.machine()
    behaviour = common.Behaviour(pace=common.Pace(args.think), assets=not args.no_assets)
    work = common.workdir("likeness-spike-")
    database = common.BenchDatabase(args.database, args.admin_url)
    try:
        database.create()
        env = common.app_env(database.url, work)
        common.prepare_demo(env)
        run = common.serve_and_launch(env, args, work, behaviour)
        problems = common.database_problems(common.read_facts(database.url), run.ledger)
    finally:
        database.drop()
        shutil.rmtree(work, ignore_errors=True)

    figures = common.run_figures(run, args, behaviour, at_start)
    worst = max(row["p99_ms"] for row in figures["latency"].values())
    goal = f"no error, every p99 < {GOAL_P99_MS:.0f} ms"
    met = common.verdict(figures, run, problems, worst < GOAL_P99_MS, goal)
    common.write_json(args.json, figures)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
