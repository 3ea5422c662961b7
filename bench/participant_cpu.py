"""Measure the CPU each kind of participant request costs, in process, on PostgreSQL."""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench.db import UNLIMITED_STARTS, prepare_database  # noqa: E402
from survey.participant.simulate import (  # noqa: E402
    TOKEN,
    form_token,
    is_step,
    parse_trial_form,
    step_form,
)

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/likeness_bench_cpu"
KINDS = ("link", "consent", "instructions", "trial page", "answer", "questions", "debrief")


class Meter:
    """CPU of the app's thread and of the bench database's PostgreSQL backends, by kind."""

    def __init__(self, url: str) -> None:
        self.database = make_url(url).database
        admin = make_url(url).set(drivername="postgresql+psycopg", database="postgres")
        self.monitor = sa.create_engine(admin, isolation_level="AUTOCOMMIT").connect()
        self.app_s: Counter[str] = Counter()
        self.database_ns: Counter[str] = Counter()
        self.count: Counter[str] = Counter()

    def backends_ns(self) -> int:
        """Return the CPU time the bench database's backends have used so far (ns)."""
        pids = self.monitor.execute(
            sa.text("SELECT pid FROM pg_stat_activity WHERE datname = :name"),
            {"name": self.database},
        ).scalars()
        total = 0
        for pid in pids:
            try:
                with open(f"/proc/{pid}/schedstat") as fh:
                    total += int(fh.read().split()[0])
            except (FileNotFoundError, ProcessLookupError):
                continue  # a backend that ended since: its time is gone with it
        return total

    def time(self, kind: str, request: Callable[[], Any]) -> Any:
        """Run one request and add its CPU to `kind`."""
        db0, app0 = self.backends_ns(), time.thread_time()
        response = request()
        self.app_s[kind] += time.thread_time() - app0
        self.database_ns[kind] += self.backends_ns() - db0
        self.count[kind] += 1
        return response

    def reset(self) -> None:
        """Forget what was measured so far (after the warm-up)."""
        self.app_s.clear()
        self.database_ns.clear()
        self.count.clear()


def one_participant(app, meter: Meter, run: str, index: int, rng: random.Random) -> None:
    """Take one participant from the study link to the debrief."""
    client = app.test_client()
    query = f"?PROLIFIC_PID=CPU{run}x{index}&STUDY_ID=bench&SESSION_ID=s{index}"
    link = meter.time("link", lambda: client.get(f"/s/demo{query}"))
    text = link.get_data(as_text=True)
    form = {
        "csrf_token": form_token(text) or "",
        "token": TOKEN.search(text).group(1),
        "agree": "1",
    }
    started = meter.time("consent", lambda: client.post(f"/s/demo/consent{query}", data=form))
    if started.status_code != 303:
        raise SystemExit(f"consent: HTTP {started.status_code}")
    meter.time("instructions", lambda: client.get(started.headers["location"]))
    page = meter.time("trial page", lambda: client.get("/s/demo/trial"))
    while page.status_code == 200 or is_step(page):
        if is_step(page):  # block instructions or a break: its Continue, then the trial page
            shown = meter.time("step", lambda: client.get("/s/demo/step"))
            data = step_form(shown.get_data(as_text=True))
            meter.time("step", partial(client.post, "/s/demo/step", data=data))
            page = meter.time("trial page", lambda: client.get("/s/demo/trial"))
            continue
        trial = parse_trial_form(page.get_data(as_text=True))
        answer = {name: rng.choice(values) for name, values in trial.choices.items()}
        answer.update(trial.hidden, rt_ms=f"{rng.uniform(400, 3000):.1f}")
        reply = meter.time("answer", partial(client.post, trial.action, data=answer))
        if reply.status_code != 303:
            raise SystemExit(f"answer: HTTP {reply.status_code}")
        page = meter.time("trial page", partial(client.get, reply.headers["location"]))
    questions = meter.time("questions", lambda: client.get("/s/demo/questions"))
    skip = {"csrf_token": form_token(questions.get_data(as_text=True)) or "", "skip": "1"}
    meter.time("questions", lambda: client.post("/s/demo/questions", data=skip))
    done = meter.time("debrief", lambda: client.get("/s/demo/done"))
    if b"LIKENESS-DEMO" not in done.data:
        raise SystemExit(f"debrief: HTTP {done.status_code}")


def main(argv: list[str] | None = None) -> int:
    """Measure, print and optionally write the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_CPU_DATABASE_URL", DEFAULT_URL)
    )
    parser.add_argument("--participants", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if not 1 <= args.participants <= 2000:
        parser.error("--participants must be 1-2000")
    if make_url(args.database_url).get_backend_name() not in ("postgresql", "postgres"):
        parser.error("--database-url must be a PostgreSQL URL")

    from survey import create_app

    media = tempfile.mkdtemp(prefix="likeness-bench-cpu-")
    prepare_database(args.database_url, media)
    app = create_app(
        {
            "DATABASE_URL": args.database_url,
            "SECRET_KEY": "bench-cpu",
            "MEDIA_DIR": media,
            **{name: int(value) for name, value in UNLIMITED_STARTS.items()},
        }
    )
    meter = Meter(args.database_url)
    rng = random.Random(args.seed)
    run = f"{int(time.time()) % 1_000_000:x}"
    for index in range(3):  # warm-up: caches, prepared statements, the pools' connections
        one_participant(app, meter, run, -1 - index, rng)
    meter.reset()
    for index in range(args.participants):
        one_participant(app, meter, run, index, rng)
    trials = meter.count["answer"]
    figures: dict[str, Any] = {"participants": args.participants, "answered_trials": trials}
    print(f"{'request':14} {'n':>6} {'app ms':>8} {'db ms':>8} {'app/trial':>10} {'db/trial':>9}")
    for kind in KINDS:
        n = meter.count[kind]
        app_ms, db_ms = 1000 * meter.app_s[kind], meter.database_ns[kind] / 1e6
        figures[kind] = {
            "n": n,
            "app_ms_per_request": round(app_ms / n, 3),
            "database_ms_per_request": round(db_ms / n, 3),
            "app_ms_per_trial": round(app_ms / trials, 3),
            "database_ms_per_trial": round(db_ms / trials, 3),
        }
        row = figures[kind]
        print(
            f"{kind:14} {n:6} {row['app_ms_per_request']:8.3f} "
            f"{row['database_ms_per_request']:8.3f} {row['app_ms_per_trial']:10.3f} "
            f"{row['database_ms_per_trial']:9.3f}"
        )
    figures["app_ms_per_trial"] = round(1000 * sum(meter.app_s.values()) / trials, 3)
    figures["database_ms_per_trial"] = round(sum(meter.database_ns.values()) / 1e6 / trials, 3)
    print(
        "per answered trial, with its share of the participant's other pages: "
        f"app {figures['app_ms_per_trial']} ms, PostgreSQL {figures['database_ms_per_trial']} ms"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    from survey.participant import hotdb

    hotdb.hot_path.dispose(app)
    with app.app_context():
        from survey.extensions import db

        db.engine.dispose()
    meter.monitor.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
