"""Benchmark the participant flow: simulated participants over real HTTP against gunicorn."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench.checks import database_problems, read_facts  # noqa: E402
from bench.db import UNLIMITED_STARTS, backend_pids, prepare_database  # noqa: E402
from bench.load import Client, Ledger, Reply  # noqa: E402
from bench.report import percentile  # noqa: E402
from bench.servers import Gunicorn, ServerSettings, cpu_seconds  # noqa: E402
from survey.participant.simulate import (  # noqa: E402
    TOKEN,
    form_token,
    is_step,
    parse_trial_form,
    step_form,
)

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/likeness_bench_participants"
GOAL_RATIO = 0.40
GOAL_P99_MS = 100.0
TRIAL_ID = re.compile(r"/trial/(\d+)$")
# A request that takes longer counts as an error (and ends that participant's run).
REQUEST_TIMEOUT_S = 30.0


# --- the load ---------------------------------------------------------------------------------


@dataclass
class Stats:
    """What the load generator saw."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    # trial id -> the measures posted (field name -> value), for every answer the server accepted
    answered: dict[int, dict[str, str]] = field(default_factory=dict)
    started: int = 0
    completed: int = 0
    stopped: int = 0
    errors: list[str] = field(default_factory=list)
    accepted_posts: int = 0

    def time(self, kind: str, seconds: float) -> None:
        """Record one request's latency."""
        self.latencies.setdefault(kind, []).append(seconds * 1000)

    def add(self, other: Stats) -> None:
        """Add what another phase of the same load saw."""
        for kind, values in other.latencies.items():
            self.latencies.setdefault(kind, []).extend(values)
        self.answered.update(other.answered)
        self.started += other.started
        self.completed += other.completed
        self.stopped += other.stopped
        self.errors += other.errors
        self.accepted_posts += other.accepted_posts


async def timed(
    stats: Stats,
    kind: str,
    client: Client,
    method: str,
    path: str,
    form: dict[str, str] | None = None,
) -> Reply:
    """Send a request and record its latency under `kind`."""
    start = time.perf_counter()
    reply = await asyncio.wait_for(client.request(method, path, form), REQUEST_TIMEOUT_S)
    stats.time(kind, time.perf_counter() - start)
    return reply


async def one_participant(
    host: str,
    port: int,
    index: int,
    run: str,
    stats: Stats,
    deadline: float,
    rng: random.Random,
    think_ms: float = 0.0,
) -> None:
    """Take one participant from the study link to the debrief (or stop at the deadline)."""
    client = Client(host, port)
    try:
        query = f"?PROLIFIC_PID=BENCH{run}x{index}&STUDY_ID=bench&SESSION_ID=s{index}"
        page = await timed(stats, "start", client, "GET", f"/s/demo{query}")
        if page.status != 200:
            stats.errors.append(f"link: HTTP {page.status}")
            return
        text = page.text
        started = await timed(
            stats,
            "start",
            client,
            "POST",
            f"/s/demo/consent{query}",
            {
                "csrf_token": form_token(text) or "",
                "token": TOKEN.search(text).group(1),
                "agree": "1",
            },
        )
        if started.status != 303:
            stats.errors.append(f"consent: HTTP {started.status}")
            return
        await timed(stats, "start", client, "GET", started.headers["location"])
        page = await timed(stats, "trial page", client, "GET", "/s/demo/trial")
        while page.status == 200 or is_step(page):
            if is_step(page):  # block instructions or a break: its Continue, then the trial
                shown = await timed(stats, "step", client, "GET", "/s/demo/step")
                await timed(stats, "step", client, "POST", "/s/demo/step", step_form(shown.text))
                page = await timed(stats, "trial page", client, "GET", "/s/demo/trial")
                continue
            if time.perf_counter() > deadline:
                stats.stopped += 1
                return
            form = parse_trial_form(page.text)
            if form is None:
                stats.errors.append("trial page without a form")
                return
            if think_ms:
                # A person looks, then answers: half to one and a half times the think time.
                await asyncio.sleep(think_ms * rng.uniform(0.5, 1.5) / 1000)
            answer = form.answer(rng.choice)
            posted = dict(answer)
            answer.update(form.hidden, rt_ms=f"{rng.uniform(400, 3000):.1f}")
            reply = await timed(stats, "answer", client, "POST", form.action, answer)
            if reply.status != 303:
                stats.errors.append(f"answer: HTTP {reply.status} {reply.text[:200]}")
                return
            stats.accepted_posts += 1
            stats.answered[int(TRIAL_ID.search(form.action).group(1))] = posted
            page = await timed(stats, "trial page", client, "GET", reply.headers["location"])
        if page.status in (302, 303) and page.headers["location"].endswith("/questions"):
            questions = await timed(stats, "finish", client, "GET", "/s/demo/questions")
            await timed(
                stats,
                "finish",
                client,
                "POST",
                "/s/demo/questions",
                {"csrf_token": form_token(questions.text) or "", "skip": "1"},
            )
        done = await timed(stats, "finish", client, "GET", "/s/demo/done")
        if done.status == 200 and "LIKENESS-DEMO" in done.text:
            stats.completed += 1
        else:
            stats.errors.append(f"debrief: HTTP {done.status}")
    except (OSError, asyncio.IncompleteReadError, ValueError, AttributeError) as exc:
        stats.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        await client.close()


async def run_participants(
    host: str,
    port: int,
    n: int,
    concurrency: int,
    max_seconds: float,
    seed: int,
    think_ms: float = 0.0,
    first: int = 0,
) -> tuple[Stats, float]:
    """Run participants `first` to `first + n - 1`, `concurrency` at a time, for at most
    `max_seconds`; return the stats and the wall time."""
    stats = Stats()
    rng = random.Random(seed * 100_003 + first)
    run = f"{seed:x}{int(time.time()) % 100000:x}"
    deadline = time.perf_counter() + max_seconds
    queue = iter(range(first, first + n))

    async def worker() -> None:
        for index in queue:
            if time.perf_counter() > deadline:
                return
            stats.started += 1
            await one_participant(
                host, port, index, run, stats, deadline, random.Random(rng.random()), think_ms
            )

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return stats, time.perf_counter() - start


# Requests a simulated participant sends over its one connection: the link, consent, the
# instructions, 36 trial pages, 35 answers, the questions twice and the debrief.
REQUESTS_PER_PARTICIPANT = 77


async def run_yardstick(
    host: str, port: int, concurrency: int, seconds: float
) -> tuple[Stats, float]:
    """POST to the yardstick back to back from `concurrency` clients for `seconds`.

    Each client opens a new connection after REQUESTS_PER_PARTICIPANT requests, as each new
    participant does: gunicorn's workers keep the connections they accepted, and 64 kept for
    a whole segment can leave one worker with most of them (and the GIL) while the others
    idle, a third of the yardstick's rate lost for the segment.
    """
    stats = Stats()
    deadline = time.perf_counter() + seconds

    async def worker(k: int) -> None:
        client = Client(host, port)
        try:
            i = 0
            while time.perf_counter() < deadline:
                if i and i % REQUESTS_PER_PARTICIPANT == 0:
                    await client.close()
                reply = await timed(
                    stats,
                    "insert",
                    client,
                    "POST",
                    "/answer",
                    {"participant": f"p{k}", "value": str(i % 7 + 1)},
                )
                if reply.status == 204:
                    stats.accepted_posts += 1
                else:
                    stats.errors.append(f"yardstick: HTTP {reply.status}")
                i += 1
        except (OSError, asyncio.IncompleteReadError) as exc:
            stats.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            await client.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return stats, time.perf_counter() - start


# --- CPU and the database check -------------------------------------------------------------


@dataclass
class CpuUse:
    """CPU seconds one phase used: the server's workers, PostgreSQL and the load generator."""

    web: float = 0.0
    database: float = 0.0
    client: float = 0.0

    def per(self, n: int) -> dict[str, float]:
        """Return milliseconds of CPU per unit of work."""
        return {k: round(1000 * v / max(n, 1), 2) for k, v in vars(self).items()}


def stored_problems(url: str, stats: Stats, yardstick: Stats) -> list[str]:
    """Check the database against what the load generator was told; list what is wrong.

    The participants' side is the check every load run ends with (bench/checks.py): each
    accepted answer stored exactly once with the measures posted, nothing stored that no one
    sent, lists balanced, no trial skipped, no orphan rows. Besides: every response keeps the
    rt_ms posted with it, and the yardstick holds one row per accepted POST.
    """
    from survey.config import database_uri

    problems = database_problems(read_facts(url), Ledger(acknowledged=stats.answered))
    engine = sa.create_engine(database_uri(url))
    try:
        with engine.connect() as conn:
            without_rt = conn.execute(
                sa.text("SELECT count(*) FROM response WHERE rt_ms IS NULL")
            ).scalar_one()
            rows = conn.execute(sa.text("SELECT count(*) FROM yardstick_answer")).scalar_one()
    finally:
        engine.dispose()
    if without_rt:
        problems.append(f"{without_rt} responses without rt_ms")
    if rows != yardstick.accepted_posts:
        problems.append(f"yardstick: {rows} rows, {yardstick.accepted_posts} accepted POSTs")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Run the yardstick and the participant load, check the database, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--participants",
        type=int,
        help="participants in all (default: 256 with --round-seconds 0 or --think-ms; 4096, "
        "a bound never reached in practice, in time-boxed rounds)",
    )
    parser.add_argument(
        "--round-seconds",
        type=float,
        help="length of each saturated round at constant concurrency (default 15; 0: each "
        "round takes its share of --participants through the whole flow)",
    )
    parser.add_argument("--max-seconds", type=float, default=120.0)
    parser.add_argument(
        "--yardstick-seconds",
        type=float,
        help="the yardstick's time in all, in --rounds + 1 segments (default: a round's "
        "length each in time-boxed rounds, so both sides warm up alike; else 24)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        help="participant phases, each between two of the yardstick's (default: 3 saturated, "
        "1 with --think-ms, where each round's burst of consents would dominate the p99)",
    )
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--worker-class", default="gthread", choices=("sync", "gthread"))
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--think-ms",
        type=float,
        default=0.0,
        help="mean time a participant looks at a trial before answering (0: none)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.round_seconds is None:
        args.round_seconds = 0.0 if args.think_ms else 15.0
    if args.participants is None:
        args.participants = 4096 if args.round_seconds else 256
    if not 0 <= args.round_seconds <= 600:
        parser.error("--round-seconds must be 0-600")
    if not 1 <= args.concurrency <= 1024 or not 1 <= args.participants <= 100_000:
        parser.error("--concurrency must be 1-1024 and --participants 1-100000")
    if not 0 <= args.think_ms <= 60_000 or not 1 <= args.max_seconds <= 3600:
        parser.error("--think-ms must be 0-60000 and --max-seconds 1-3600")
    if args.rounds is None:
        args.rounds = 1 if args.think_ms else 3
    if args.yardstick_seconds is None:
        args.yardstick_seconds = (
            (args.rounds + 1) * args.round_seconds if args.round_seconds else 24.0
        )
    if args.yardstick_seconds <= 0:
        parser.error("--yardstick-seconds must be more than 0")
    if not 1 <= args.rounds <= min(20, args.participants):
        parser.error("--rounds must be 1-20 and at most --participants")
    if make_url(args.database_url).get_backend_name() not in ("postgresql", "postgres"):
        parser.error("--database-url must be a PostgreSQL URL")

    media = tempfile.mkdtemp(prefix="likeness-bench-media-")
    print(f"preparing {make_url(args.database_url).render_as_string()} …", flush=True)
    prepare_database(args.database_url, media)
    from bench.yardstick_app import create_table

    create_table(args.database_url)
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "SECRET_KEY": "bench-participants",
        "MEDIA_DIR": media,
        "PYTHONPATH": str(ROOT),
        "LIKENESS_ENV": "development",
        # One pooled connection per worker thread, none opened and closed on the side: every
        # database process lives as long as the server, so its CPU time can be counted.
        "DB_POOL_SIZE": str(args.threads if args.worker_class == "gthread" else 1),
        "DB_MAX_OVERFLOW": "0",
        **UNLIMITED_STARTS,
    }
    settings = ServerSettings(args.workers, args.worker_class, args.threads)

    def serve(target: str, chdir: Path, load, cpu: CpuUse):
        """Serve `target`, run `load(port)` against it, add the CPU it took to `cpu`."""
        server = Gunicorn(env, settings, target=target, chdir=chdir)
        try:
            server.start()
            workers = server.worker_pids()
            web0, client0 = cpu_seconds(workers), time.process_time()
            result = asyncio.run(load(server.port))
            cpu.web += cpu_seconds(workers) - web0
            cpu.client += time.process_time() - client0
            # The pool's connections were opened for this run: their whole life counts.
            cpu.database += cpu_seconds(backend_pids(args.database_url))
            return result
        finally:
            server.stop()

    def yardstick(seconds: float) -> tuple[Stats, float]:
        """Load the yardstick for `seconds`."""
        print(f"yardstick: {args.concurrency} clients for {seconds:.0f} s …", flush=True)
        return serve(
            "yardstick_app:app",
            ROOT / "bench",
            lambda port: run_yardstick("127.0.0.1", port, args.concurrency, seconds),
            yard_cpu,
        )

    # The yardstick and the participants take turns (Y A Y A … Y), so that a change in the
    # machine's speed during the run (a neighbour's load, PostgreSQL's background work after
    # the participants' writes) weighs on both sides alike.
    yard_cpu, app_cpu = CpuUse(), CpuUse()
    ystats, stats = Stats(), Stats()
    ytime = wall = 0.0
    segments: list[float] = []

    def yardstick_segment() -> None:
        nonlocal ytime
        segment, seconds = yardstick(args.yardstick_seconds / (args.rounds + 1))
        ystats.add(segment)
        ytime += seconds
        segments.append(round(segment.accepted_posts / seconds, 1))

    yardstick_segment()
    done = 0
    for round_ in range(args.rounds):
        left = args.max_seconds - wall
        if args.round_seconds:
            # Time-boxed: as many as start within the round (the rest of the budget at most).
            share = args.participants - done
            left = min(left, args.round_seconds)
            print(f"participants: {args.concurrency} at a time for {left:.0f} s …", flush=True)
        else:
            share = args.participants * (round_ + 1) // args.rounds - done
            print(f"participants: {share} at {args.concurrency} at a time …", flush=True)
        phase, seconds = serve(
            "app:app",
            ROOT,
            lambda port, share=share, done=done, left=left: run_participants(
                "127.0.0.1",
                port,
                share,
                args.concurrency,
                max(left, 0.001),
                args.seed,
                args.think_ms,
                first=done,
            ),
            app_cpu,
        )
        stats.add(phase)
        wall += seconds
        done += phase.started
        yardstick_segment()

    problems = stored_problems(args.database_url, stats, ystats)
    inserts_per_s = ystats.accepted_posts / ytime
    answers_per_s = len(stats.answered) / wall
    hot = stats.latencies.get("trial page", []) + stats.latencies.get("answer", [])
    figures = {
        "machine_cores": os.cpu_count(),
        "server": f"gunicorn {args.worker_class}, {args.workers} workers"
        + (f" x {args.threads} threads" if args.worker_class == "gthread" else ""),
        "concurrency": args.concurrency,
        "think_ms": args.think_ms,
        "rounds": (
            f"{args.rounds} of {args.round_seconds:g} s at constant concurrency"
            if args.round_seconds
            else f"{args.rounds}, {args.participants} participants in all"
        ),
        "yardstick_inserts_per_s": round(inserts_per_s, 1),
        "yardstick_segments_per_s": segments,
        "yardstick_p50_ms": round(percentile(ystats.latencies.get("insert", []), 50), 1),
        "yardstick_p99_ms": round(percentile(ystats.latencies.get("insert", []), 99), 1),
        "participants_started": stats.started,
        "participants_completed": stats.completed,
        "participants_stopped_at_deadline": stats.stopped,
        "answered_trials": len(stats.answered),
        "wall_s": round(wall, 1),
        "answered_trials_per_s": round(answers_per_s, 1),
        "ratio_to_yardstick": round(answers_per_s / inserts_per_s, 3) if inserts_per_s else None,
        "p50_ms": round(percentile(hot, 50), 1),
        "p99_ms": round(percentile(hot, 99), 1),
        "p50_ms_by_request": {
            k: round(percentile(v, 50), 1) for k, v in sorted(stats.latencies.items())
        },
        "p99_ms_by_request": {
            k: round(percentile(v, 99), 1) for k, v in sorted(stats.latencies.items())
        },
        "cpu_ms_per_insert": yard_cpu.per(ystats.accepted_posts),
        "cpu_ms_per_answered_trial": app_cpu.per(len(stats.answered)),
        "errors": len(stats.errors) + len(ystats.errors),
        "database_check": problems or "every accepted answer stored exactly once",
    }
    for key, value in figures.items():
        print(f"{key:34} {value}")
    for error in (stats.errors + ystats.errors)[:10]:
        print("error:", error)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    met = (figures["ratio_to_yardstick"] or 0) >= GOAL_RATIO and figures["p99_ms"] < GOAL_P99_MS
    print(
        f"goal (>= {GOAL_RATIO:.0%} of the yardstick, p99 < {GOAL_P99_MS:.0f} ms): "
        + ("met" if met else "NOT met")
    )
    return 0 if not problems and not stats.errors and not ystats.errors else 1


if __name__ == "__main__":
    sys.exit(main())
