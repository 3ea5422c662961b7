"""Background jobs: enqueue, run, retry and watch them through one interface, on Dramatiq (Redis)
when JOBS_BROKER_URL is set and in a thread of the web process when not; see docs/jobs.md."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app
from sqlalchemy.exc import IntegrityError

from survey.extensions import db
from survey.i18n import N_, translated
from survey.models import Job, JobWorker, utcnow

log = logging.getLogger(__name__)

# The Dramatiq actor's name: every job travels as this one message carrying the job's id.
ACTOR_NAME = "likeness_job"
# Jobs started in threads of this process (the embedded default), by job id.
THREADS: dict[int, threading.Thread] = {}
_THREADS_LOCK = threading.Lock()


class JobError(Exception):
    """A failure in plain words that running the job again cannot fix (bad input, say): the
    job fails at once, without the retries an unexpected error gets."""


@dataclass(frozen=True)
class Kind:
    """What a kind of job runs, and what the researcher reads about it."""

    name: str
    title: str
    run: Callable[[Job, Progress], dict]


KINDS: dict[str, Kind] = {}

# What the researcher reads for each state of a job (translated where it is shown).
STATE_LABELS = {
    "queued": N_("queued"),
    "running": N_("running"),
    "done": N_("done"),
    "failed": N_("failed"),
}


def kind(name: str, title: str) -> Callable[[Callable[[Job, Progress], dict]], Any]:
    """Register a job handler: `run(job, progress)` does the work and returns the result
    reference (a small JSON object). It must give the same result when run again. `title`, in
    English marked with N_(), is translated where it is shown (`title`)."""

    def register(run: Callable[[Job, Progress], dict]) -> Callable[[Job, Progress], dict]:
        KINDS[name] = Kind(name, title, run)
        return run

    return register


def job_key(kind_name: str, inputs: dict) -> str:
    """The hash of a job's kind and inputs: the same work always gets the same key."""
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{kind_name}\x1f{canonical}".encode()).hexdigest()


def broker_url() -> str:
    """The Redis URL of the job queue, or '' for the embedded default (threads)."""
    return str(current_app.config.get("JOBS_BROKER_URL") or "")


# --- enqueue, find, retry ----------------------------------------------------------------------


def find(key: str) -> Job | None:
    """The job of this key, or None."""
    return db.session.scalar(sa.select(Job).where(Job.key == key))


def enqueue(kind_name: str, study_id: int | None = None, **inputs: Any) -> Job:
    """The job doing this work: the existing one when the same inputs were enqueued before
    (done, running or failed alike), else a new queued job, handed to a worker."""
    if kind_name not in KINDS:
        raise ValueError(f"no job kind {kind_name!r}")
    recover_in_process()
    key = job_key(kind_name, inputs)
    job = find(key)
    if job is not None:
        return job
    job = Job(
        key=key,
        kind=kind_name,
        study_id=study_id,
        inputs=inputs,
        status="queued",
        max_attempts=current_app.config["JOBS_MAX_ATTEMPTS"],
        message=N_("Waiting for a worker"),
    )
    db.session.add(job)
    try:
        db.session.commit()
    except IntegrityError:
        # Another request enqueued the same work first: that job is this one.
        db.session.rollback()
        job = find(key)
        if job is None:
            raise
        return job
    dispatch(job.id)
    return job


def retry(job_id: int) -> bool:
    """Queue a failed job again with fresh attempts; False when it had not failed (a second
    click, or another researcher's, changes nothing)."""
    again = db.session.execute(
        sa.update(Job)
        .where(Job.id == job_id, Job.status == "failed")
        .values(
            status="queued",
            attempts=0,
            progress=0,
            message=N_("Waiting for a worker"),
            error="",
            worker="",
            finished_at=None,
            created_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if again:
        dispatch(job_id)
    return bool(again)


def dispatch(job_id: int, delay_ms: int = 0) -> None:
    """Hand a job to the engine, or to a thread of this process in the embedded default.

    A queue that cannot be reached is logged, not raised: the job stays queued in the
    database and the next worker's sweep hands it out.
    """
    url = broker_url()
    if not url:
        _start_thread(current_app._get_current_object(), job_id, delay_ms)
        return
    try:
        actor(url).send_with_options(args=(job_id,), delay=delay_ms or None)
    except Exception:
        log.exception("job %s could not be queued; a worker's sweep will hand it out", job_id)


def study_jobs(study_id: int, limit: int = 20) -> list[Job]:
    """The study's most recent jobs, newest first."""
    return list(
        db.session.scalars(
            sa.select(Job)
            .where(Job.study_id == study_id)
            .order_by(Job.created_at.desc(), Job.id.desc())
            .limit(limit)
        )
    )


def title(job: Job) -> str:
    """What the researcher reads as the job's name, in the page's language."""
    known = KINDS.get(job.kind)
    return translated(known.title) if known is not None else job.kind


def state_label(status: str) -> str:
    """What the researcher reads for a job's state, in the page's language."""
    return translated(STATE_LABELS.get(status, status))


def state_labels() -> dict[str, str]:
    """Every job state's words in the page's language (for the job page's script)."""
    return {status: translated(label) for status, label in STATE_LABELS.items()}


def shown_message(job: Job) -> str:
    """The job's last message in the page's language: the fixed ones the jobs themselves write
    (marked with N_()) are translated; a handler's own progress messages are shown as written."""
    return translated(job.message)


def status_json(job: Job) -> dict[str, Any]:
    """What the job page's script polls: status, progress, message and error (the words in the
    page's language)."""
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "progress": job.progress,
        "message": shown_message(job),
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "error": translated(job.error) if job.status == "failed" else "",
        "result": job.result if job.status == "done" else None,
    }


# --- running -----------------------------------------------------------------------------------


def _stale_before() -> Any:
    """Heartbeats older than this belong to a worker that is gone."""
    return utcnow() - timedelta(seconds=current_app.config["JOBS_STALE_SECONDS"])


def _claim(job_id: int, worker: str) -> bool:
    """Take the job for this worker, counting the attempt: a queued job, or a running one
    whose worker stopped beating (killed mid-job). One conditional UPDATE, so of two workers
    handed the same job only one runs it."""
    now = utcnow()
    claimed = db.session.execute(
        sa.update(Job)
        .where(
            Job.id == job_id,
            Job.attempts < Job.max_attempts,
            sa.or_(
                Job.status == "queued",
                sa.and_(Job.status == "running", Job.heartbeat_at < _stale_before()),
            ),
        )
        .values(
            status="running",
            attempts=Job.attempts + 1,
            worker=worker,
            started_at=now,
            heartbeat_at=now,
            message=N_("Started"),
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    if not claimed:
        # Started as often as allowed and abandoned every time: it fails, with that said.
        db.session.execute(
            sa.update(Job)
            .where(
                Job.id == job_id,
                Job.attempts >= Job.max_attempts,
                sa.or_(
                    Job.status == "queued",
                    sa.and_(Job.status == "running", Job.heartbeat_at < _stale_before()),
                ),
            )
            .values(
                status="failed",
                finished_at=now,
                error=sa.case(
                    (
                        Job.error == "",
                        N_(
                            "The job stopped before it finished every time it was "
                            "started (its worker was stopped or ran out of memory)."
                        ),
                    ),
                    else_=Job.error,
                ),
            )
            .execution_options(synchronize_session=False)
        )
    db.session.commit()
    return bool(claimed)


class Progress:
    """Report a running job's progress (0-100 and a message); each call renews its heartbeat.

    Written on a connection of its own, so the handler's transaction is left alone; a handler
    commits its own work before reporting (SQLite has one writer at a time).
    """

    def __init__(self, job_id: int, worker: str) -> None:
        self.job_id = job_id
        self.worker = worker

    def __call__(self, percent: int, message: str = "") -> None:
        values: dict[str, Any] = {
            "progress": max(0, min(100, int(percent))),
            "heartbeat_at": utcnow(),
        }
        if message:
            values["message"] = message[:200]
        _mine(self.job_id, self.worker, values)


def _mine(job_id: int, worker: str, values: dict[str, Any]) -> int:
    """Update the job while this worker holds it (on a connection of its own)."""
    with db.engine.begin() as conn:
        return conn.execute(
            sa.update(Job)
            .where(Job.id == job_id, Job.worker == worker, Job.status == "running")
            .values(**values)
        ).rowcount


class _Beat(threading.Thread):
    """Renew a running job's heartbeat and its worker's until stopped."""

    def __init__(self, app: Flask, job_id: int, worker: str) -> None:
        super().__init__(name=f"job-{job_id}-beat", daemon=True)
        self.app, self.job_id, self.worker = app, job_id, worker
        self.stop = threading.Event()

    def run(self) -> None:
        every = self.app.config["JOBS_HEARTBEAT_SECONDS"]
        with self.app.app_context():
            while not self.stop.wait(every):
                try:
                    _mine(self.job_id, self.worker, {"heartbeat_at": utcnow()})
                    seen(self.worker.split("#")[0])
                except Exception:
                    log.exception("heartbeat of job %s failed", self.job_id)


def _describe(exc: BaseException) -> str:
    """An error as the researcher reads it."""
    if isinstance(exc, JobError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def run(job_id: int, worker: str) -> str:
    """Run one job if this worker can claim it: 'done', 'failed', 'retry' (queued again after
    an error, attempts left) or 'skipped' (someone else has it, or it is finished)."""
    # Each attempt holds the job under a name of its own, so that of two attempts in one
    # process (one wrongly presumed dead) only the later may finish it.
    worker = f"{worker}#{uuid.uuid4().hex[:8]}"
    if not _claim(job_id, worker):
        return "skipped"
    job = db.session.get(Job, job_id)
    assert job is not None
    handler = KINDS.get(job.kind)
    beat = _Beat(current_app._get_current_object(), job_id, worker)
    beat.start()
    try:
        if handler is None:
            raise JobError(f"This server does not know jobs of kind {job.kind!r}.")
        result = handler.run(job, Progress(job_id, worker))
    except Exception as exc:
        db.session.rollback()
        log.exception("job %s (%s) failed", job_id, job.kind)
        job = db.session.get(Job, job_id)
        assert job is not None
        final = isinstance(exc, JobError) or job.attempts >= job.max_attempts
        done = _mine(
            job_id,
            worker,
            {
                "status": "failed" if final else "queued",
                "error": _describe(exc),
                "finished_at": utcnow() if final else None,
                "message": N_("Failed") if final else N_("Waiting to try again"),
            },
        )
        db.session.expire_all()
        return ("failed" if final else "retry") if done else "skipped"
    finally:
        beat.stop.set()
        beat.join(5)
    # Only the worker that still holds the job finishes it: a worker presumed dead whose job
    # was taken over leaves the result to the one that took it.
    done = _mine(
        job_id,
        worker,
        {
            "status": "done",
            "progress": 100,
            "message": N_("Finished"),
            "error": "",
            "result": result,
            "finished_at": utcnow(),
        },
    )
    db.session.expire_all()
    return "done" if done else "skipped"


def run_until_settled(job_id: int, worker: str) -> str:
    """Run a job, and again after each error while attempts are left (the embedded default's
    retries, and `flask run-job`)."""
    delay = current_app.config["JOBS_RETRY_DELAY_MS"] / 1000
    outcome = run(job_id, worker)
    for _ in range(current_app.config["JOBS_MAX_ATTEMPTS"]):
        if outcome != "retry":
            break
        time.sleep(delay)
        outcome = run(job_id, worker)
    return outcome


def _in_thread(app: Flask, job_id: int, delay_ms: int) -> None:
    """The embedded default: run a job in a thread of the web process."""
    try:
        with app.app_context():
            try:
                if delay_ms:
                    time.sleep(delay_ms / 1000)
                run_until_settled(job_id, worker_name("web"))
            except Exception:
                log.exception("job %s stopped its thread", job_id)
            finally:
                db.session.remove()
    finally:
        # Only once its app context is gone (connections given back) is the thread done.
        with _THREADS_LOCK:
            THREADS.pop(job_id, None)


def _start_thread(app: Flask, job_id: int, delay_ms: int = 0) -> None:
    """Start a job's thread unless one of this process runs it already."""
    with _THREADS_LOCK:
        if job_id in THREADS:
            return
        thread = threading.Thread(
            target=_in_thread, args=(app, job_id, delay_ms), name=f"job-{job_id}", daemon=True
        )
        THREADS[job_id] = thread
    thread.start()


def join_threads(timeout: float = 60) -> bool:
    """Wait (bounded) until this process runs no job thread; True if none is left."""
    deadline = time.monotonic() + timeout
    while THREADS and time.monotonic() < deadline:
        for thread in list(THREADS.values()):
            thread.join(max(0.0, deadline - time.monotonic()))
    return not THREADS


def wait(job_id: int, timeout: float = 60) -> Job | None:
    """Wait (bounded) for this process's thread of a job, then read the job."""
    thread = THREADS.get(job_id)
    if thread is not None:
        thread.join(timeout)
    db.session.expire_all()
    return db.session.get(Job, job_id)


_LAST_RECOVERY = [0.0]


def recover_in_process() -> int:
    """The embedded default's sweep (no worker runs one): at most once per stale limit, start
    again in this process the jobs a stopped web process left (see `recover`)."""
    if broker_url():
        return 0
    now = time.monotonic()
    if now - _LAST_RECOVERY[0] < current_app.config["JOBS_STALE_SECONDS"]:
        return 0
    _LAST_RECOVERY[0] = now
    return recover()


def recover() -> int:
    """Hand out again the jobs nobody is running: queued ones waiting five times the stale
    limit (their message lost, say by a Redis restart; a job merely waiting behind others gets
    a spare message, which the claim makes harmless) and running ones whose worker stopped
    beating. Returns how many."""
    stale = _stale_before()
    lost = utcnow() - timedelta(seconds=5 * current_app.config["JOBS_STALE_SECONDS"])
    ids = list(
        db.session.scalars(
            sa.select(Job.id).where(
                sa.or_(
                    sa.and_(Job.status == "queued", Job.created_at < lost),
                    sa.and_(Job.status == "running", Job.heartbeat_at < stale),
                )
            )
        )
    )
    for job_id in ids:
        dispatch(job_id)
    return len(ids)


@kind("probe", N_("Checking the job queue"))
def _probe(job: Job, progress: Progress) -> dict:
    """A job that only waits and reports progress (and fails when asked): `flask worker
    --probe` and the tests check a queue and its workers with it."""
    steps = max(1, min(int(job.inputs.get("steps", 1)), 600))
    pause = max(0.0, min(float(job.inputs.get("pause", 0)), 10.0))
    for step in range(steps):
        progress(100 * step // steps, f"Step {step + 1} of {steps}")
        time.sleep(pause)
    if job.attempts <= int(job.inputs.get("fail_until", 0)):
        raise RuntimeError(f"the probe was asked to fail on attempt {job.attempts}")
    return {"steps": steps, "attempt": job.attempts}


# --- workers -----------------------------------------------------------------------------------


def worker_name(role: str = "worker") -> str:
    """This process's name among workers: role, host and process id."""
    return f"{role}@{socket.gethostname()}:{os.getpid()}"[:120]


def seen(worker: str) -> None:
    """Record that this worker is alive (its row in job_worker)."""
    now = utcnow()
    with db.engine.begin() as conn:
        updated = conn.execute(
            sa.update(JobWorker).where(JobWorker.name == worker).values(seen_at=now)
        ).rowcount
        if not updated:
            conn.execute(sa.insert(JobWorker).values(name=worker, started_at=now, seen_at=now))


def last_seen_worker() -> Any:
    """When any worker was last seen alive (None if never)."""
    return db.session.scalar(sa.select(sa.func.max(JobWorker.seen_at)))


def waiting_jobs() -> int:
    """How many jobs wait for a worker."""
    return int(db.session.scalar(sa.select(sa.func.count()).where(Job.status == "queued")) or 0)


_BROKERS: dict[str, Any] = {}
_ACTORS: dict[str, Any] = {}
_APP: Flask | None = None


def actor(url: str) -> Any:
    """The Dramatiq actor carrying job ids on the Redis queue at `url` (built once)."""
    if url in _ACTORS:
        return _ACTORS[url]
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    config = current_app.config
    broker = RedisBroker(
        url=url,
        namespace=config["JOBS_QUEUE"],
        heartbeat_timeout=config["JOBS_STALE_SECONDS"] * 1000,
        maintenance_chance=config["JOBS_MAINTENANCE_CHANCE"],
    )
    dramatiq.set_broker(broker)
    _BROKERS[url] = broker
    _ACTORS[url] = dramatiq.actor(
        _perform,
        actor_name=ACTOR_NAME,
        queue_name=config["JOBS_QUEUE"],
        broker=broker,
        # Attempts are counted on the job row (retries after a killed worker count too).
        max_retries=0,
        time_limit=config["JOBS_TIME_LIMIT_SECONDS"] * 1000,
    )
    return _ACTORS[url]


def _perform(job_id: int) -> None:
    """The actor: run the job in the worker's app; an error was recorded, and queued again."""
    assert _APP is not None, "jobs run in `flask worker`"
    with _APP.app_context():
        try:
            outcome = run(job_id, worker_name())
            if outcome == "retry":
                dispatch(job_id, _APP.config["JOBS_RETRY_DELAY_MS"])
        finally:
            db.session.remove()


def serve(app: Flask, threads: int = 1, max_seconds: float | None = None) -> None:
    """Run a worker until stopped (SIGINT/SIGTERM) or for `max_seconds`: Dramatiq's worker on
    the configured queue, with this process's heartbeat and a sweep of abandoned jobs."""
    global _APP
    import dramatiq

    _APP = app
    with app.app_context():
        url = broker_url()
        if not url:
            raise RuntimeError(
                "JOBS_BROKER_URL is not set: without a queue, jobs run inside the web "
                "process and no worker is needed."
            )
        broker = actor(url).broker
        me = worker_name()
        sweep_every = app.config["JOBS_STALE_SECONDS"]
        worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=500)
        worker.start()
        log.info("job worker %s on %s", me, url)
        started = time.monotonic()
        next_sweep = 0.0
        stop = threading.Event()
        _on_signals(stop)
        try:
            while not stop.is_set():
                now = time.monotonic()
                if max_seconds is not None and now - started > max_seconds:
                    break
                try:
                    seen(me)
                    if now >= next_sweep:
                        recover()
                        next_sweep = now + sweep_every
                except Exception:
                    log.exception("worker heartbeat or sweep failed")
                finally:
                    db.session.remove()
                stop.wait(app.config["JOBS_HEARTBEAT_SECONDS"])
        finally:
            worker.stop(timeout=app.config["JOBS_SHUTDOWN_SECONDS"] * 1000)
            broker.close()


def _on_signals(stop: threading.Event) -> None:
    """Stop the loop on SIGINT and SIGTERM (the running job finishes first, within limits)."""
    import signal

    def handle(signum: int, _frame: Any) -> None:
        log.info("worker stopping (signal %s)", signum)
        stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
