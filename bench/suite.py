"""How long `make test` takes on a fresh clone: the commit checked out alone in a new folder,
its virtual environment made, then lint and the whole suite (goal: under 10 minutes in all on
the project's two-core machine).

    python bench/suite.py                 # the current commit, SQLite and PostgreSQL
    python bench/suite.py --keep          # leave the clone in place afterwards

PostgreSQL is tested when TEST_DATABASE_URL is set (as in .ci/run); the script sets it to the
local server's `test` database unless told another. Prints each step's time and the busy CPU
seconds of the whole machine (from /proc/stat), which say whether the cores were kept busy;
exits 1 when the goal is missed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.servers import machine_busy_seconds

GOAL_SECONDS = 600


def step(name: str, command: list[str], cwd: Path, env: dict) -> tuple[float, float]:
    """Run a command; return its wall and busy-CPU seconds (exit on failure)."""
    cpu, start = machine_busy_seconds(), time.monotonic()
    done = subprocess.run(command, cwd=cwd, env=env)
    wall, busy = time.monotonic() - start, machine_busy_seconds() - cpu
    print(f"== {name}: {wall:.0f} s ({busy:.0f} busy CPU-seconds)", flush=True)
    if done.returncode != 0:
        sys.exit(f"{name} failed (exit {done.returncode})")
    return wall, busy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="leave the clone in place")
    args = parser.parse_args()
    env = dict(os.environ)
    env.setdefault("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    commit = subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True)
    folder = Path(tempfile.mkdtemp(prefix="likeness-suite-"))
    clone = folder / "likeness"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    print(f"fresh clone of {commit.strip()} in {clone}", flush=True)
    try:
        install = step("make install-dev", ["make", "install-dev"], clone, env)
        test = step("make test (lint, then the suite)", ["make", "test"], clone, env)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    total = install[0] + test[0]
    verdict = "met" if total < GOAL_SECONDS else "NOT met"
    print(f"== in all: {total / 60:.1f} min ({verdict}: goal {GOAL_SECONDS // 60} min)")
    if total >= GOAL_SECONDS:
        sys.exit(1)


if __name__ == "__main__":
    main()
