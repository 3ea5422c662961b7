"""The debrief's automatic return in chromium: with and without script, after the delay set."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from survey.extensions import db
from survey.models import Participant
from tests.helpers import seed_quick_demo, set_study

pytestmark = [pytest.mark.browser, pytest.mark.slow]

URL = "https://app.prolific.com/submissions/complete?cc=LIKENESS-DEMO"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture
def demo(app, monkeypatch):
    """The demo study, seeded quickly; returns its id."""
    return seed_quick_demo(app, monkeypatch)


def reach_debrief(app, base: str, context):
    """Start a Prolific participant, mark them completed and open the debrief; return the page
    and the monotonic time the debrief was asked for."""
    # The platform is not reachable from the tests: its page is answered here.
    context.route(
        "https://app.prolific.com/**",
        lambda route: route.fulfill(body="<h1>Back on Prolific</h1>", content_type="text/html"),
    )
    page = context.new_page()
    page.goto(f"{base}/s/demo?PROLIFIC_PID=p1&STUDY_ID=s&SESSION_ID=x1")
    page.click("#agree")
    page.wait_for_url("**/s/demo/instructions")
    with app.app_context():
        db.session.execute(
            sa.update(Participant).values(status="completed", demographics={"age": "skip"})
        )
        db.session.commit()
    asked = time.monotonic()
    page.goto(f"{base}/s/demo/done")
    return page, asked


@pytest.mark.parametrize("script", [False, True], ids=["no-script", "script"])
def test_the_debrief_returns_to_the_platform_after_the_delay(
    app, demo, live_server, browser, script
):
    set_study(app, demo, completion_url=URL, settings={"return_redirect_s": 5})
    context = browser.new_context(viewport=PHONE, java_script_enabled=script)
    try:
        page, asked = reach_debrief(app, live_server, context)
        note = page.locator("[data-redirect-note]")
        if script:
            # The note counts down; the page itself has not left yet.
            page.wait_for_function(
                "document.querySelector('[data-redirect-note]').textContent.includes('seconds.')"
            )
            assert "Taking you back to Prolific automatically in" in note.text_content()
        else:
            assert "5 seconds after it opened" in note.text_content()
        assert page.url.endswith("/s/demo/done")
        page.wait_for_url("https://app.prolific.com/**", timeout=20_000)
        waited = time.monotonic() - asked
        assert page.url == URL
        assert waited >= 4.5, waited
    finally:
        context.close()


def test_the_debrief_stays_without_a_delay(app, demo, live_server, browser):
    set_study(app, demo, completion_url=URL, settings={})
    context = browser.new_context(viewport=DESKTOP)
    try:
        page, _asked = reach_debrief(app, live_server, context)
        page.wait_for_timeout(6_500)
        assert page.url.endswith("/s/demo/done")
        with page.expect_navigation():
            page.click("text=Return to Prolific")
        assert page.url == URL
    finally:
        context.close()
