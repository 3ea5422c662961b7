"""Background jobs with a real worker process (`flask worker` on Redis), on SQLite and
PostgreSQL: enqueue and run, retry after a SIGKILLed worker, a failure's error and Retry
button, check-deploy's warning, and the in-process default without a queue."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
import redis
import sqlalchemy as sa

from survey import deploy_check, jobs
from survey.extensions import db
from survey.models import Job, Study, StudyMember
from tests.helpers import ROOT

REDIS_URL = os.environ.get("LIKENESS_TEST_REDIS", "redis://127.0.0.1:6379/0")
SETTINGS = {
    "JOBS_HEARTBEAT_SECONDS": 1,
    "JOBS_STALE_SECONDS": 3,
    "JOBS_RETRY_DELAY_MS": 0,
    "JOBS_MAINTENANCE_CHANCE": 1_000_000,
}


@pytest.fixture
def queued(app, database_url):
    """The app pointed at a fresh queue on the test Redis (failing, never skipping, when
    Redis cannot be reached), and a function starting `flask worker` processes on it."""
    redis.Redis.from_url(REDIS_URL, socket_timeout=5).ping()
    queue = f"likeness-test-{uuid.uuid4().hex[:12]}"
    app.config.update(JOBS_BROKER_URL=REDIS_URL, JOBS_QUEUE=queue, **SETTINGS)
    started: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        env = dict(os.environ)
        env.update({name: str(value) for name, value in SETTINGS.items()})
        env.update(
            FLASK_APP="app",
            DATABASE_URL=database_url,
            SECRET_KEY="test-secret-key-not-for-production",
            MEDIA_DIR=app.config["MEDIA_DIR"],
            JOBS_BROKER_URL=REDIS_URL,
            JOBS_QUEUE=queue,
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "flask", "worker", "--max-seconds", "90"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{queue}:*"):
        client.delete(key)


def _until(app, job_id: int, done, seconds: float = 60) -> Job:
    """Read the job every 0.2 s until `done(job)`; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        with app.app_context():
            job = db.session.get(Job, job_id)
            db.session.expunge(job)
        if done(job):
            return job
        assert time.monotonic() < deadline, (job.status, job.progress, job.attempts, job.error)
        time.sleep(0.2)


def _enqueue(app, kind: str = "probe", study_id: int | None = None, **inputs) -> int:
    with app.app_context():
        return jobs.enqueue(kind, study_id=study_id, **inputs).id


def test_a_worker_runs_an_enqueued_job_once_with_its_progress(app, queued):
    queued()
    job_id = _enqueue(app, steps=4, pause=0.3)
    seen = _until(app, job_id, lambda j: j.status == "running" and j.progress > 0)
    assert seen.message.startswith("Step ")
    job = _until(app, job_id, lambda j: j.status == "done")
    assert (job.progress, job.attempts, job.result) == (100, 1, {"steps": 4, "attempt": 1})
    assert job.worker.startswith("worker@")
    # The same work asked for again is the same job: nothing runs twice.
    assert _enqueue(app, steps=4, pause=0.3) == job_id
    with app.app_context():
        assert db.session.query(Job).count() == 1


def test_a_job_whose_worker_is_killed_is_finished_by_the_next_worker(app, queued):
    first = queued()
    job_id = _enqueue(app, steps=20, pause=0.4)
    _until(app, job_id, lambda j: j.status == "running" and j.progress >= 10)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    queued()
    job = _until(app, job_id, lambda j: j.status == "done", seconds=90)
    # Started twice, finished once: the result is the second attempt's.
    assert (job.attempts, job.result) == (2, {"steps": 20, "attempt": 2})
    assert job.error == ""


def test_a_failing_job_shows_its_error_and_the_retry_button_runs_it_again(
    app, queued, client, auth, demo
):
    queued()
    study_id = demo
    with app.app_context():
        owner = db.session.scalar(
            sa.select(StudyMember.researcher_id).where(
                StudyMember.study_id == study_id, StudyMember.role == "owner"
            )
        )
    job_id = _enqueue(app, study_id=study_id, fail_until=3)
    job = _until(app, job_id, lambda j: j.status == "failed")
    assert job.attempts == 3
    assert "the probe was asked to fail on attempt 3" in job.error
    auth.sign_in(owner)
    page = client.get(f"/r/studies/{study_id}/jobs/{job_id}").get_data(as_text=True)
    assert "The job failed" in page and "asked to fail on attempt 3" in page
    assert ">Retry</button>" in page
    status = client.get(f"/r/studies/{study_id}/jobs/{job_id}/status").get_json()
    assert status["status"] == "failed" and "attempt 3" in status["error"]
    app.config["WTF_CSRF_ENABLED"] = True
    assert client.post(f"/r/studies/{study_id}/jobs/{job_id}/retry").status_code == 400
    app.config["WTF_CSRF_ENABLED"] = False
    assert client.post(f"/r/studies/{study_id}/jobs/{job_id}/retry").status_code == 302
    # Attempts start afresh; the probe fails three more times, then is failed again.
    job = _until(app, job_id, lambda j: j.status == "failed" and j.attempts == 3)
    listed = client.get(f"/r/studies/{study_id}/jobs").get_data(as_text=True)
    assert f"/r/studies/{study_id}/jobs/{job_id}" in listed


def test_check_deploy_warns_when_jobs_wait_and_no_worker_is_seen(app, queued):
    with app.app_context():
        jobs.enqueue("probe", steps=1)
        problems = deploy_check.job_problems(app.config)
        assert len(problems) == 1 and "no job worker was seen" in problems[0].message
        jobs.seen(jobs.worker_name())
        assert deploy_check.job_problems(app.config) == []


def test_without_a_queue_jobs_run_in_the_web_process_with_retries(app):
    assert not app.config["JOBS_BROKER_URL"]
    app.config.update(JOBS_RETRY_DELAY_MS=0)
    with app.app_context():
        job = jobs.wait(jobs.enqueue("probe", steps=2, fail_until=1).id, timeout=30)
        assert (job.status, job.attempts, job.result) == ("done", 2, {"steps": 2, "attempt": 2})
        assert job.worker.startswith("web@")
        stuck = jobs.wait(jobs.enqueue("probe", fail_until=9).id, timeout=30)
        assert (stuck.status, stuck.attempts) == ("failed", 3)
        assert jobs.retry(stuck.id) and not jobs.retry(job.id)
        assert jobs.wait(stuck.id, timeout=30).status == "failed"


def test_unknown_studies_jobs_are_not_found(app, client, auth, make_researcher):
    owner = make_researcher()
    auth.sign_in(owner)
    with app.app_context():
        assert db.session.query(Study).count() == 0
    assert client.get("/r/studies/999/jobs/1").status_code == 404
