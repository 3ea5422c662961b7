"""Benchmark the public findings page: CPU and latency of an anonymous visit, and what visitors
cost the participants of another study on the same server."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.db import UNLIMITED_STARTS, prepare_database
from bench.load import Client
from bench.participants import Stats, run_participants
from bench.report import machine, percentile, print_figures
from bench.servers import Gunicorn, ServerSettings

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/likeness_bench_public"
PUBLIC_SLUG = "pub"
CHART = re.compile(r'<img src="(/f/[^"]+/charts/[^"]+\.svg)"')
GOAL_CPU_MS = 10.0
GOAL_P90_RATIO = 1.5


def publish_study(url: str, media: str, n: int) -> None:
    """Turn the seeded demo into the published study "pub", then seed a fresh open demo."""
    import sqlalchemy as sa

    from survey import create_app
    from survey.demo import seed_demo
    from survey.extensions import db
    from survey.findings import service
    from survey.models import Researcher, Study
    from survey.participant.simulate import simulate
    from survey.studies import change_state

    app = create_app(
        {"DATABASE_URL": url, "SECRET_KEY": "bench", "MEDIA_DIR": media, **UNLIMITED_STARTS}
    )
    with app.app_context():
        study = db.session.scalar(sa.select(Study).where(Study.slug == "demo"))
        study.slug = PUBLIC_SLUG
        db.session.commit()
    simulate(app, PUBLIC_SLUG, n, seed=3)
    with app.app_context(), app.test_request_context(base_url="http://127.0.0.1"):
        study = db.session.scalar(sa.select(Study).where(Study.slug == PUBLIC_SLUG))
        change_state(study, "closed", None)
        db.session.commit()
        owner = db.session.scalar(sa.select(Researcher).where(Researcher.email == "demo"))
        report = service.publish(study, owner)
        draw = getattr(service, "draw_public_charts", None)
        if draw is not None:  # the code under test draws at publishing
            from flask import url_for

            from survey.findings.routes import FIGURES_VERSION

            draw(
                study,
                report,
                url_for("findings.public", slug=PUBLIC_SLUG, _external=True),
                FIGURES_VERSION,
            )
        seed_demo()
        db.session.remove()
        db.engine.dispose()


def in_process(url: str, media: str, visits: int) -> dict:
    """CPU and wall time of anonymous visits through Flask's test client."""
    from survey import create_app

    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "MEDIA_DIR": media})
    client = app.test_client()

    def visit() -> tuple[float, float, int]:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        page = client.get(f"/f/{PUBLIC_SLUG}", base_url="http://127.0.0.1")
        assert page.status_code == 200, page.status_code
        charts = CHART.findall(page.get_data(as_text=True))
        for chart in charts:
            response = client.get(chart, base_url="http://127.0.0.1")
            assert response.status_code == 200, (chart, response.status_code)
        return (
            (time.process_time() - cpu0) * 1000,
            (time.perf_counter() - wall0) * 1000,
            len(charts),
        )

    first_cpu, first_wall, charts = visit()
    cpu, wall = zip(*[visit()[:2] for _ in range(visits)], strict=True)
    return {
        "charts_per_visit": charts,
        "first_visit_cpu_ms": round(first_cpu, 1),
        "first_visit_wall_ms": round(first_wall, 1),
        "visit_cpu_ms_p50": round(statistics.median(cpu), 1),
        "visit_cpu_ms_p90": round(percentile(list(cpu), 90), 1),
        "visit_wall_ms_p50": round(statistics.median(wall), 1),
        "visit_wall_ms_p90": round(percentile(list(wall), 90), 1),
        "request_cpu_ms_p50": round(statistics.median(cpu) / (charts + 1), 1),
    }


async def visitors_loop(
    port: int, n: int, pause_ms: float, stop: asyncio.Event, stats: Stats
) -> None:
    """`n` anonymous visitors, each loading the public page and its charts (no browser cache),
    then reading for about `pause_ms` (half to one and a half times), until `stop`."""
    rng = random.Random(5)

    async def one() -> None:
        client = Client("127.0.0.1", port)
        try:
            while not stop.is_set():
                start = time.perf_counter()
                page = await client.request("GET", f"/f/{PUBLIC_SLUG}")
                for chart in CHART.findall(page.text):
                    await client.request("GET", chart)
                stats.time("visit", time.perf_counter() - start)
                try:
                    await asyncio.wait_for(stop.wait(), pause_ms * rng.uniform(0.5, 1.5) / 1000)
                except TimeoutError:
                    pass
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            stats.errors.append(f"visitor: {type(exc).__name__}: {exc}")
        finally:
            await client.close()

    await asyncio.gather(*(one() for _ in range(n)))


async def phase(port: int, args, visitors: int, first: int) -> tuple[Stats, Stats]:
    """Participants at a person's pace, with `visitors` visitors loading the public page."""
    stop, seen = asyncio.Event(), Stats()
    crowd = asyncio.ensure_future(visitors_loop(port, visitors, args.visitor_pause_ms, stop, seen))
    try:
        stats, _wall = await run_participants(
            "127.0.0.1",
            port,
            args.participants,
            args.participants,
            args.max_seconds,
            args.seed,
            args.think_ms,
            first=first,
        )
    finally:
        stop.set()
        await crowd
    return stats, seen


def over_http(url: str, media: str, args) -> dict:
    """Participants' latency alone and with visitors, against gunicorn."""
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SECRET_KEY": "bench-public",
        "MEDIA_DIR": media,
        "PYTHONPATH": str(ROOT),
        "LIKENESS_ENV": "development",
        "DB_POOL_SIZE": "8",
        "DB_MAX_OVERFLOW": "0",
        **UNLIMITED_STARTS,
    }
    server = Gunicorn(env, ServerSettings(3, "gthread", 8))
    figures = {}
    try:
        server.start()
        first = 0
        for name, crowd in (("alone", 0), (f"with {args.visitors} visitors", args.visitors)):
            print(f"participants {name} …", flush=True)
            stats, seen = asyncio.run(phase(server.port, args, crowd, first))
            first += args.participants
            hot = stats.latencies.get("trial page", []) + stats.latencies.get("answer", [])
            figures[f"participants {name}"] = {
                "completed": stats.completed,
                "errors": len(stats.errors),
                "p50_ms": round(percentile(hot, 50), 1),
                "p90_ms": round(percentile(hot, 90), 1),
            }
            if crowd:
                visits = seen.latencies.get("visit", [])
                figures["visitors"] = {
                    "visits": len(visits),
                    "errors": len(seen.errors),
                    "p50_ms": round(percentile(visits, 50), 1),
                    "p90_ms": round(percentile(visits, 90), 1),
                }
    finally:
        server.stop()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--published-n", type=int, default=32)
    parser.add_argument("--visits", type=int, default=20)
    parser.add_argument("--visitors", type=int, default=16)
    parser.add_argument(
        "--visitor-pause-ms",
        type=float,
        default=2000.0,
        help="mean time a visitor reads before loading the page again",
    )
    parser.add_argument("--participants", type=int, default=16)
    parser.add_argument("--think-ms", type=float, default=1500.0)
    parser.add_argument("--max-seconds", type=float, default=40.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if not 20 <= args.published_n <= 200 or not 1 <= args.visits <= 500:
        parser.error("--published-n must be 20-200 and --visits 1-500")
    if not 0 <= args.visitors <= 64 or not 1 <= args.participants <= 128:
        parser.error("--visitors must be 0-64 and --participants 1-128")
    if not 0 <= args.visitor_pause_ms <= 60_000 or not 1 <= args.max_seconds <= 600:
        parser.error("--visitor-pause-ms must be 0-60000 and --max-seconds 1-600")
    media = tempfile.mkdtemp(prefix="likeness-bench-media-")
    print(f"code: {ROOT}; preparing the bench database …", flush=True)
    prepare_database(args.database_url, media)
    publish_study(args.database_url, media, args.published_n)
    figures = {"code": str(ROOT), "machine": machine()}
    figures.update(in_process(args.database_url, media, args.visits))
    if args.visitors:
        figures.update(over_http(args.database_url, media, args))
    print_figures(figures)
    met = figures["request_cpu_ms_p50"] < GOAL_CPU_MS
    if args.visitors:
        alone = figures["participants alone"]["p90_ms"]
        crowded = figures[f"participants with {args.visitors} visitors"]["p90_ms"]
        met = met and crowded <= GOAL_P90_RATIO * alone
    print(
        f"goal (CPU per request < {GOAL_CPU_MS:.0f} ms; participants' p90 with visitors <= "
        f"{GOAL_P90_RATIO}x alone): " + ("met" if met else "NOT met")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
