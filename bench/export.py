"""Benchmark the trials.csv export: seed a million answers, stream the download, time it,
weigh it."""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

GOAL_SECONDS = 30
GOAL_MB = 150
N_IDENTITIES = 40
BATCH = 50_000
CHILD_TIMEOUT = 900
# Each trial stores two answers, as match, rate and detect trials do.
BLOCKS = (
    ("recognition", "match", ("confidence", "same")),
    ("impressions", "rate", ("professional", "trust")),
    ("detection", "detect", ("confidence", "source")),
)
T0 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


def _app(url: str):
    """Build the application on the bench database (CSRF off: the client posts directly)."""
    from survey import create_app

    return create_app(
        {
            "DATABASE_URL": url,
            "SECRET_KEY": "bench-export",
            "WTF_CSRF_ENABLED": False,
            "MEDIA_DIR": tempfile.mkdtemp(prefix="likeness-bench-media-"),
        }
    )


def _admin_engine(url: str) -> tuple[sa.Engine, str]:
    """Return an engine on the server's maintenance database and the bench database's name."""
    from survey.config import database_uri

    parsed = make_url(database_uri(url))
    return sa.create_engine(
        parsed.set(database="postgres"), isolation_level="AUTOCOMMIT"
    ), parsed.database


def prepare_database(url: str) -> None:
    """Create the PostgreSQL bench database (emptied when it exists); a SQLite file must be new."""
    from survey.config import database_uri

    parsed = make_url(database_uri(url))
    if parsed.get_backend_name() != "postgresql":
        if parsed.database and Path(parsed.database).exists():
            raise SystemExit(f"{parsed.database} exists: give the name of a new SQLite file")
        return
    admin, name = _admin_engine(url)
    with admin.connect() as conn:
        if not conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}):
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    engine = sa.create_engine(parsed)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


def drop_database(url: str) -> None:
    """Drop the PostgreSQL bench database after the run (a million rows need not stay)."""
    if make_url(url).get_backend_name() not in ("postgres", "postgresql"):
        return
    admin, name = _admin_engine(url)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _insert(raw, dialect: str, table: str, columns: tuple[str, ...], rows) -> None:
    """Bulk-insert rows: COPY on PostgreSQL, executemany in batches on SQLite."""
    cursor = raw.cursor()
    if dialect == "sqlite":
        # Stored as SQLAlchemy stores timestamps in SQLite, so the app reads them back.
        rows = (
            tuple(v.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, datetime) else v for v in row)
            for row in rows
        )
    if dialect == "postgresql":
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    else:
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        batch = []
        for row in rows:
            batch.append(row)
            if len(batch) == BATCH:
                cursor.executemany(sql, batch)
                batch.clear()
        if batch:
            cursor.executemany(sql, batch)
    cursor.close()


def seed(url: str, rows: int, per_participant: int) -> tuple[int, int]:
    """Build the schema and a study whose participants give `rows` answers.

    Returns (study, owner).
    """
    from flask_migrate import upgrade

    from survey.extensions import db
    from survey.models import Block, Identity, Image, Researcher, Study, StudyMember

    app = _app(url)
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        owner = Researcher(email="bench@example.org", name="Bench")
        owner.set_password("bench-export-password")
        study = Study(slug="bench-export", title="Export benchmark")
        db.session.add_all([owner, study, StudyMember(study=study, researcher=owner, role="owner")])
        identities, images = [], {}
        for i in range(N_IDENTITIES):
            identity = Identity(study=study, code=f"P{i + 1:03d}", gender=("woman", "man")[i % 2])
            identities.append(identity)
            for role, source in (("headshot", "real"), ("headshot", "ai"), ("probe", "photo")):
                sha = f"{len(images) + 1:064x}"
                images[i, source] = Image(
                    study=study,
                    identity=identity,
                    role=role,
                    source=source,
                    generator="bench",
                    sha256=sha,
                    width=600,
                    height=800,
                    content_type="image/jpeg",
                    byte_size=1,
                    storage_key=f"b/{sha}-o.jpg",
                    display_key=f"b/{sha}-d.jpg",
                )
        blocks = [
            Block(study=study, position=n, name=name, task=task, settings={})
            for n, (name, task, _) in enumerate(BLOCKS, start=1)
        ]
        db.session.add_all(identities + list(images.values()) + blocks)
        db.session.commit()
        study_id, owner_id = study.id, owner.id
        identity_ids = [identity.id for identity in identities]
        image_ids = {key: image.id for key, image in images.items()}
        block_ids = [block.id for block in blocks]

        trials_each = per_participant // 2
        n_participants = rows // (trials_each * 2)
        rng = random.Random(20250106)
        dialect = db.engine.dialect.name
        raw = db.engine.raw_connection()
        try:
            _insert(
                raw,
                dialect,
                "participant",
                (
                    "id",
                    "public_id",
                    "study_id",
                    "list_index",
                    "seed",
                    "status",
                    "is_preview",
                    "source",
                    "device",
                    "started_at",
                    "completed_at",
                    "demographics",
                    "consented_at",
                ),
                (
                    (
                        p,
                        f"p{rng.getrandbits(64):016x}",
                        study_id,
                        p % 2,
                        p,
                        "completed",
                        False,
                        "prolific",
                        "desktop",
                        T0 + timedelta(seconds=p),
                        T0 + timedelta(seconds=p + 600),
                        "{}",
                        T0 + timedelta(seconds=p),
                    )
                    for p in range(1, n_participants + 1)
                ),
            )

            def trials():
                trial_id = 0
                for p in range(1, n_participants + 1):
                    for position in range(1, trials_each + 1):
                        trial_id += 1
                        b = (position - 1) * len(BLOCKS) // trials_each
                        i = (p + position) % N_IDENTITIES
                        condition = ("real", "ai")[(i + p) % 2]
                        task = BLOCKS[b][1]
                        probe = (i + position % 2) % N_IDENTITIES if task == "match" else None
                        yield (
                            trial_id,
                            p,
                            block_ids[b],
                            position,
                            task,
                            identity_ids[i],
                            condition,
                            image_ids[i, condition],
                            image_ids[probe, "photo"] if probe is not None else None,
                            identity_ids[probe] if probe is not None else None,
                            (probe == i) if probe is not None else None,
                            False,
                            False,
                            T0 + timedelta(seconds=p + position),
                        )

            _insert(
                raw,
                dialect,
                "trial",
                (
                    "id",
                    "participant_id",
                    "block_id",
                    "position",
                    "task",
                    "identity_id",
                    "condition",
                    "image_id",
                    "probe_image_id",
                    "probe_identity_id",
                    "is_match",
                    "is_practice",
                    "is_attention",
                    "answered_at",
                ),
                trials(),
            )

            def responses():
                response_id = 0
                for trial_id in range(1, n_participants * trials_each + 1):
                    p = (trial_id - 1) // trials_each + 1
                    position = (trial_id - 1) % trials_each + 1
                    b = (position - 1) * len(BLOCKS) // trials_each
                    for measure in BLOCKS[b][2]:
                        response_id += 1
                        if measure == "same":
                            value = str(rng.getrandbits(1))
                        elif measure == "source":
                            value = ("real", "ai")[rng.getrandbits(1)]
                        elif measure == "confidence":
                            value = str(rng.randint(1, 5))
                        else:
                            value = str(rng.randint(1, 7))
                        yield (
                            response_id,
                            trial_id,
                            p,
                            measure,
                            value,
                            round(rng.uniform(300, 4000), 1),
                            None,
                            T0,
                        )

            _insert(
                raw,
                dialect,
                "response",
                (
                    "id",
                    "trial_id",
                    "participant_id",
                    "measure",
                    "value",
                    "rt_ms",
                    "client_ts",
                    "created_at",
                ),
                responses(),
            )
            if dialect == "postgresql":
                cursor = raw.cursor()
                for table in ("participant", "trial", "response"):
                    cursor.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                    cursor.execute(f"ANALYZE {table}")
                cursor.close()
            raw.commit()
        finally:
            raw.close()
        db.engine.dispose()
    return study_id, owner_id


def _status_mb(field: str) -> float:
    """Return a memory figure of this process from /proc/self/status, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def _rss_mb() -> float:
    """Return this process's resident memory now, in MB."""
    return _status_mb("VmRSS")


def _peak_rss_mb() -> float:
    """Return this process's peak resident memory, in MB.

    VmHWM, not ru_maxrss: after fork and exec, Linux carries the parent's peak into the
    child's ru_maxrss, and the parent here holds the whole app from seeding.
    """
    return _status_mb("VmHWM")


def _lean_app(url: str):
    """Build a Flask app with the database alone: no blueprints, so none of their imports."""
    from flask import Flask

    from survey import config
    from survey.extensions import db

    app = Flask("bench_export")
    app.config.from_mapping(
        config.load(
            Path(tempfile.mkdtemp(prefix="likeness-bench-")),
            {"DATABASE_URL": url, "SECRET_KEY": "bench-export"},
        )
    )
    db.init_app(app)
    return app


def _chunks_through_route(url: str, study_id: int, owner_id: int, name: str):
    """Yield the export's chunks as the browser gets them: the real route, streamed."""
    from survey.extensions import db
    from survey.models import Researcher

    app = _app(url)
    client = app.test_client()
    with app.app_context():
        user_id = db.session.get(Researcher, owner_id).get_id()
    with client.session_transaction() as session:
        session["_user_id"] = user_id
        session["_fresh"] = True
    yield None  # ready: the app is built and the client signed in
    response = client.post(f"/r/studies/{study_id}/exports/{name}", buffered=False)
    try:
        if response.status_code != 200:
            raise SystemExit(f"the export answered {response.status_code}")
        yield from response.response
    finally:
        response.close()


def _chunks_from_generator(url: str, study_id: int, name: str):
    """Yield the export's chunks from survey.exports directly, in an app with no blueprints."""
    from survey import exports

    makers = {
        "trials.csv": exports.trials_csv,
        "participants.csv": exports.participants_csv,
        "stimuli.csv": exports.stimuli_csv,
        "psych-ds.zip": exports.psychds_zip,
    }
    app = _lean_app(url)
    with app.app_context():
        yield None
        yield from makers[name](study_id)


def measure(url: str, study_id: int, owner_id: int, name: str, mode: str) -> dict:
    """Stream one export (through the route or the generator); return time, size, memory."""
    if mode == "route":
        chunks = _chunks_through_route(url, study_id, owner_id, name)
    else:
        chunks = _chunks_from_generator(url, study_id, name)
    next(chunks)
    before = _rss_mb()
    start = time.perf_counter()
    size = lines = 0
    first_byte = None
    for chunk in chunks:
        if first_byte is None:
            first_byte = time.perf_counter() - start
        data = chunk if isinstance(chunk, bytes) else chunk.encode()
        size += len(data)
        lines += data.count(b"\n")
    seconds = time.perf_counter() - start
    return {
        "file": name,
        "mode": mode,
        "seconds": round(seconds, 2),
        "first_byte_s": round(first_byte or 0.0, 3),
        "bytes": size,
        "lines": lines,
        "rss_before_mb": round(before, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Seed, then measure each asked export in a child process; print a summary."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        help="PostgreSQL URL of a bench database (default: SQLite in a temporary folder)",
    )
    parser.add_argument(
        "--rows", type=int, default=1_000_000, help="answer rows to seed (default 1,000,000)"
    )
    parser.add_argument(
        "--per-participant", type=int, default=100, help="answers per participant (default 100)"
    )
    parser.add_argument(
        "--file",
        action="append",
        dest="files",
        help="export to measure (default trials.csv); repeatable",
    )
    parser.add_argument(
        "--mode",
        action="append",
        dest="modes",
        choices=("route", "generator"),
        help="route: the whole app through the test client; generator: "
        "survey.exports in an app with the database only (default: both)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the PostgreSQL bench database afterwards"
    )
    parser.add_argument(
        "--child", nargs=4, metavar=("STUDY", "OWNER", "FILE", "MODE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    tmp = None
    if args.database_url:
        url = args.database_url
    else:
        tmp = tempfile.TemporaryDirectory(prefix="likeness-bench-")
        url = f"sqlite:///{tmp.name}/bench-export.db"

    if args.child:
        study_id, owner_id, name, mode = args.child
        print(json.dumps(measure(url, int(study_id), int(owner_id), name, mode)))
        return 0
    if args.rows < 1 or args.per_participant < 2:
        parser.error("--rows must be positive and --per-participant at least 2")

    prepare_database(url)
    started = time.perf_counter()
    study_id, owner_id = seed(url, args.rows, args.per_participant)
    backend = make_url(url).get_backend_name()
    print(f"seeded {args.rows:,} answers in {time.perf_counter() - started:.1f} s ({backend})")
    failed = False
    for name in args.files or ["trials.csv"]:
        for mode in args.modes or ["route", "generator"]:
            child = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--database-url",
                    url,
                    "--child",
                    str(study_id),
                    str(owner_id),
                    name,
                    mode,
                ],
                capture_output=True,
                text=True,
                timeout=CHILD_TIMEOUT,
                cwd=ROOT,
                env=os.environ.copy(),
            )
            if child.returncode != 0:
                print(child.stderr, file=sys.stderr)
                return 1
            result = json.loads(child.stdout.strip().splitlines()[-1])
            print(json.dumps(result))
            trials_each = args.per_participant // 2
            expected = args.rows // (trials_each * 2) * trials_each * 2 + 1
            if name == "trials.csv" and result["lines"] != expected:
                print(
                    f"trials.csv has {result['lines']} lines, expected {expected}", file=sys.stderr
                )
                failed = True
            ok = result["seconds"] < GOAL_SECONDS and result["peak_rss_mb"] < GOAL_MB
            grew = result["peak_rss_mb"] - result["rss_before_mb"]
            print(
                f"{name} ({mode}): {result['seconds']} s, peak RSS {result['peak_rss_mb']} MB "
                f"of which {grew:.1f} MB during the export (goal < {GOAL_SECONDS} s, "
                f"< {GOAL_MB} MB): {'met' if ok else 'MISSED'}"
            )
    if tmp is not None:
        tmp.cleanup()
    elif not args.keep:
        drop_database(url)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
