"""In chromium: a job page's progress bar follows the job without reloading, the page reloads
itself once the job is done, and without script it refreshes itself."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from survey.extensions import db
from survey.models import Job, StudyMember, utcnow
from tests.browser.helpers import researcher_context

pytestmark = [pytest.mark.browser]


def _set(app, job_id: int, **values) -> None:
    with app.app_context():
        db.session.execute(sa.update(Job).where(Job.id == job_id).values(**values))
        db.session.commit()


def test_the_progress_bar_follows_the_job_then_the_page_shows_it_done(
    app, live_server, browser, demo
):
    with app.app_context():
        owner = db.session.scalar(
            sa.select(StudyMember.researcher_id).where(StudyMember.study_id == demo)
        )
        job = Job(
            key="f" * 64,
            kind="export",
            study_id=demo,
            inputs={"name": "psych-ds.zip"},
            status="running",
            progress=10,
            message="Writing psych-ds.zip",
            attempts=1,
            heartbeat_at=utcnow(),
        )
        db.session.add(job)
        db.session.commit()
        job_id = job.id
    url = f"{live_server}/r/studies/{demo}/jobs/{job_id}"
    for script in (False, True):
        context = researcher_context(
            browser,
            app,
            live_server,
            owner,
            viewport={"width": 390, "height": 844},
            java_script_enabled=script,
        )
        page = context.new_page()
        page.set_default_timeout(15000)
        page.goto(url)
        refresh = page.locator('meta[http-equiv="refresh"]').count()
        if not script:
            assert refresh == 1  # without script the page refreshes itself
            context.close()
            continue
        assert refresh == 0  # the script keeps the page current instead
        # The states' words come from the page (gettext), not from the script.
        states = json.loads(page.get_attribute("#job", "data-states"))
        assert states == {
            "queued": "queued",
            "running": "running",
            "done": "done",
            "failed": "failed",
        }
        assert page.eval_on_selector("#job-progress", "e => e.value") == 10
        _set(app, job_id, progress=64, message="Writing psych-ds.zip: 3.2 MB")
        for _ in range(50):  # the script polls every 2 s: at most 10 s
            if page.eval_on_selector("#job-progress", "e => e.value") == 64:
                break
            page.wait_for_timeout(200)
        assert page.eval_on_selector("#job-progress", "e => e.value") == 64
        assert page.inner_text("[data-field=message]") == "Writing psych-ds.zip: 3.2 MB"
        _set(app, job_id, status="done", progress=100, message="Finished", result={"bytes": 1})
        page.wait_for_selector("text=Download psych-ds.zip")
        assert page.inner_text("[data-field=status]") == "done"
        context.close()
