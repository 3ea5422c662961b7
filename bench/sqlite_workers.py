"""The embedded SQLite default under several gunicorn workers: no "database is locked" for
anyone."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

LOCKED = "database is locked"


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Read the command line."""
    parser = common.run_arguments(__doc__, participants=200, seed=3)
    parser.add_argument("--demographics", type=float, default=0.5, help="share answering them")
    parser.add_argument("--withdraw", type=float, default=0.05, help="share withdrawing mid-way")
    args = common.parse_run(parser, argv)
    if args.workers < 2:
        parser.error("--workers must be at least 2: the point is several processes on one file")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the participants on SQLite, check the database; exit 1 when anyone met an error."""
    args = parse(argv)
    common.stop_on_sigterm()
    at_start = common.machine()
    behaviour = common.Behaviour(
        pace=common.Pace(args.think), demographics=args.demographics, withdraw=args.withdraw
    )
    work = common.workdir("likeness-sqlite-")
    try:
        url = f"sqlite:///{work / 'likeness.db'}"
        env = common.app_env(url, work)
        common.prepare_demo(env)
        run = common.serve_and_launch(env, args, work, behaviour)
        problems = common.database_problems(common.read_facts(url), run.ledger)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    figures = common.run_figures(run, args, behaviour, at_start)
    figures["database"] = "one SQLite file (WAL, busy timeout 30 s), as without DATABASE_URL"
    figures["try_again_pages"] = run.ledger.outage.get("503 try-again page", 0)
    figures["locked_in_server_log"] = run.log.count(LOCKED)
    nothing_locked = not figures["try_again_pages"] and not figures["locked_in_server_log"]
    met = common.verdict(
        figures, run, problems, nothing_locked, "no participant meets a locked database"
    )
    common.write_json(args.json, figures)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
