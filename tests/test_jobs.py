"""Background jobs with a real worker process (`flask worker` on Redis), on SQLite and
PostgreSQL: enqueue and run, retry after a SIGKILLed worker, a failure's error and Retry
button, check-deploy's warning, and the in-process default without a queue."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import uuid
import zipfile
from datetime import timedelta

import pytest
import redis
import sqlalchemy as sa

from survey import deploy_check, jobs
from survey.extensions import db
from survey.models import Image, Job, Report, Study, StudyMember, utcnow
from tests.findings.support import fill, owner_id, page_text
from tests.helpers import ROOT, full_set, upload_zip

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
            [sys.executable, "-m", "flask", "worker", "--max-seconds", "900"],
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


def _until(app, job_id: int, done, seconds: float = 180) -> Job:
    """Read the job every 0.2 s until `done(job)`; fail after `seconds` (generous: the test
    machine may be shared)."""
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
    job = _until(app, job_id, lambda j: j.status == "done", seconds=240)
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


def _only_job(app, kind: str) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(Job.id).where(Job.kind == kind))


@pytest.mark.slow
def test_a_worker_computes_a_large_report_that_the_page_follows(app, queued, client, auth, demo):
    fill(app, demo, 3)
    app.config["REPORT_INLINE_MAX_ROWS"] = 10
    queued()
    auth.sign_in(owner_id(app))
    url = f"/r/studies/{demo}/report"
    first = client.get(url)
    assert "Computing the report" in page_text(first)
    job_id = _only_job(app, "report")
    assert f"/r/studies/{demo}/jobs/{job_id}" in first.get_data(as_text=True)
    job = _until(app, job_id, lambda j: j.status in ("done", "failed"), seconds=600)
    assert (job.status, job.attempts, job.error) == ("done", 1, "")
    with app.app_context():
        reports = db.session.execute(sa.select(Report.id, Report.status)).all()
    assert [(r.id, r.status) for r in reports] == [(job.result["report_id"], "done")]
    done = client.get(url)
    assert 'http-equiv="refresh"' not in done.get_data(as_text=True)
    assert "Findings" in page_text(done)
    with app.app_context():
        assert db.session.query(Job).count() == 1  # the visits asked for nothing more


def test_a_large_stimulus_zip_is_imported_by_a_worker(app, queued, client, auth, make_researcher):
    app.config["STIMULUS_ZIP_INLINE_MB"] = 0
    queued()
    rid = make_researcher()
    auth.sign_in(rid)
    with app.app_context():
        study = Study(slug="faces", title="Faces")
        db.session.add(study)
        db.session.flush()
        db.session.add(StudyMember(study_id=study.id, researcher_id=rid, role="owner"))
        db.session.commit()
        study_id = study.id
    archive = full_set(("P001", "P002"))
    response = upload_zip(client, study_id, archive)
    job_id = _only_job(app, "stimulus_zip")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/r/studies/{study_id}/jobs/{job_id}")
    page = client.get(f"/r/studies/{study_id}/jobs/{job_id}").get_data(as_text=True)
    assert "Importing a stimulus ZIP" in page and "<progress" in page
    job = _until(app, job_id, lambda j: j.status in ("done", "failed"))
    assert (job.status, job.result["identities"]) == ("done", 2), job.error
    with app.app_context():
        images = db.session.scalar(sa.select(sa.func.count()).select_from(Image))
    assert images == job.result["images"] > 0
    # The same ZIP again is the same job: nothing is imported twice.
    upload_zip(client, study_id, archive)
    with app.app_context():
        assert db.session.query(Job).count() == 1
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Image)) == images
    # A refused set fails at once, with its problems in the job's error.
    upload_zip(client, study_id, b"not a zip at all")
    with app.app_context():
        bad = db.session.scalar(sa.select(Job.id).where(Job.id != job_id))
    failed = _until(app, bad, lambda j: j.status == "failed")
    assert failed.attempts == 1 and "nothing was imported" in failed.error


def test_a_big_study_psychds_zip_is_written_by_a_worker(app, queued, client, auth, demo):
    fill(app, demo, 2)
    app.config["EXPORT_INLINE_MAX_ROWS"] = 10
    queued()
    auth.sign_in(owner_id(app))
    response = client.post(f"/r/studies/{demo}/exports/psych-ds.zip")
    assert response.status_code == 302
    job_id = _only_job(app, "export")
    job = _until(app, job_id, lambda j: j.status in ("done", "failed"))
    assert job.status == "done", job.error
    page = client.get(f"/r/studies/{demo}/jobs/{job_id}").get_data(as_text=True)
    assert "Download psych-ds.zip" in page
    download = client.get(f"/r/studies/{demo}/jobs/{job_id}/download")
    assert download.status_code == 200 and download.mimetype == "application/zip"
    body = download.get_data()
    download.close()
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        names = archive.namelist()
    assert "dataset_description.json" in names and len(body) == job.result["bytes"]
    # Streamed in the request, the same study gives the same tables.
    app.config["EXPORT_INLINE_MAX_ROWS"] = 10**9
    streamed = client.post(f"/r/studies/{demo}/exports/psych-ds.zip")
    with zipfile.ZipFile(io.BytesIO(streamed.data)) as archive:
        assert sorted(archive.namelist()) == sorted(names)


def test_without_a_queue_a_job_left_by_a_stopped_web_process_is_started_again(app):
    with app.app_context():
        job = Job(
            key=jobs.job_key("probe", {"steps": 1}),
            kind="probe",
            inputs={"steps": 1},
            status="running",
            attempts=1,
            worker="web@elsewhere:1",
            heartbeat_at=utcnow() - timedelta(seconds=app.config["JOBS_STALE_SECONDS"] + 1),
        )
        db.session.add(job)
        db.session.commit()
        jobs._LAST_RECOVERY[0] = 0.0
        assert jobs.recover_in_process() == 1
        job = jobs.wait(job.id, timeout=30)
        assert (job.status, job.attempts, job.result) == ("done", 2, {"steps": 1, "attempt": 2})
