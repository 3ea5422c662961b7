"""In chromium: the monitor's script refreshes its figures every 10 seconds with the page's own
words (rendered through gettext into data attributes), says so when a refresh fails, and the
page shows its figures without script."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from survey.extensions import db
from survey.models import StudyMember
from tests.browser.helpers import researcher_context

pytestmark = [pytest.mark.browser]


def test_the_monitor_refreshes_its_figures_with_the_pages_words(app, live_server, browser, demo):
    with app.app_context():
        owner = db.session.scalar(
            sa.select(StudyMember.researcher_id).where(StudyMember.study_id == demo)
        )
    url = f"{live_server}/r/studies/{demo}/monitor"
    context = researcher_context(browser, app, live_server, owner, java_script_enabled=False)
    page = context.new_page()
    page.goto(url)
    assert page.inner_text("#monitor-status").startswith("Figures of ")
    assert page.inner_text("#recent-answers tbody") == "No answers yet."
    context.close()

    context = researcher_context(browser, app, live_server, owner)
    page = context.new_page()
    page.set_default_timeout(15000)
    # A condition of a choice task has none of its own ("both (choose)").
    choice = {"task": "choose", "condition": None, "answered": 1, "scheduled": 2, "participants": 1}
    served = {"fail": False}

    def figures(route):
        """The study's figures as served, with a median and a choice task's condition."""
        if served["fail"]:
            route.fulfill(status=503, body="")
            return
        body = route.fetch().json()
        body["median_completion_s"] = 150
        body["conditions"] = [choice]
        route.fulfill(json=body)

    page.route("**/monitor.json", figures)
    page.clock.install()
    page.goto(url)
    # The script writes the words it finds on the page, whatever their language.
    page.eval_on_selector("#recent-answers", "t => t.setAttribute('data-empty', 'Noch nichts.')")
    page.clock.run_for(10_000)
    status = page.locator("#monitor-status")
    status.filter(has_text="They refresh every 10 seconds.").wait_for()
    text = status.inner_text()
    assert text.startswith("Figures of 20") and text.endswith("Z. They refresh every 10 seconds.")
    assert page.inner_text('[data-figure="median_completion_s"]') == "2.5 min"
    assert page.inner_text("#conditions tbody td:nth-child(2)") == "both (choose)"
    assert page.inner_text("#recent-answers tbody") == "Noch nichts."

    served["fail"] = True
    page.clock.run_for(10_000)
    status.filter(has_text="Could not refresh").wait_for()
    assert status.inner_text() == (
        "Could not refresh the figures just now; trying again in 10 seconds."
    )
    context.close()
