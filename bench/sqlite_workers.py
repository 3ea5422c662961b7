"""The embedded SQLite default under several gunicorn workers: no "database is locked" for anyone.

    .venv/bin/python bench/sqlite_workers.py
    .venv/bin/python bench/sqlite_workers.py --participants 300 --think 0

Likeness without DATABASE_URL keeps its data in one SQLite file (WAL, a 30 s busy timeout).
This run serves the demo study from such a file with several gunicorn workers, each with its
own connections, and sends participants through the real HTTP flow as bench/launch_spike.py
does, doing every kind of write a participant makes: starting (list assignment and the
schedule), answering, the optional questions (some fill them in) and withdrawal (a few). A
"database is locked" error would reach a participant as the 503 try-again page or a 500; the
run counts both, searches the server's log for the message, and then checks the database as
the spike does. `--think 0` removes the thinking time: every writer collides with the others.
"""

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
