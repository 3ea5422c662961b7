"""The distractor before a memory test phase in chromium: with script it counts down, without
it the page reloads itself when the time is up; neither offers a way on before."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from survey.extensions import db
from survey.models import Block, Participant
from survey.participant.simulate import agree
from tests.helpers import refreeze
from tests.participant.support import answer_trials

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SECONDS = 3
# The demo's trials before its test phase: match 10, rate 9, detect 8, learn 4.
BEFORE_TEST = 31
# The participant cookie and the participant forms' key, with their paths.
COOKIES = (("likeness_participant", "/s/demo"), ("likeness_form", "/s/"))


@pytest.mark.parametrize("script", [True, False], ids=["script", "no-script"])
def test_the_distractor_runs_its_time_then_leads_to_the_test(
    app, demo, live_server, browser, script
):
    with app.app_context():
        block = db.session.scalar(sa.select(Block).where(Block.task == "recognise"))
        block.settings = {**block.settings, "distractor_s": SECONDS}
        db.session.commit()
        refreeze(demo)
    # The trials before the test phase through the app, then this browser as the participant.
    client = app.test_client()
    agree(client, "demo")
    answer_trials(client, BEFORE_TEST)
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, java_script_enabled=script
    )
    cookies = [client.get_cookie(name, path=path) for name, path in COOKIES]
    context.add_cookies(
        [{"name": c.key, "value": c.value, "url": live_server + c.path} for c in cookies]
    )
    page = context.new_page()
    try:
        page.goto(f"{live_server}/s/demo/trial")
        assert page.url.endswith("/s/demo/distractor")
        page.click("#start")
        problem = page.locator(".sum-problem").inner_text()
        assert problem.endswith("=")
        a, op, b, _ = problem.split()
        result = int(a) + int(b) if op == "+" else int(a) - int(b)
        page.fill("#answer", str(result))
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.locator("#continue").count() == 0  # no way on while it runs
        if script:
            left = int(page.locator("[data-seconds-left]").get_attribute("data-left"))
            assert 0 < left <= SECONDS
        # The page reloads itself (meta refresh) once the time is up and offers Continue.
        page.locator("#continue").wait_for(timeout=(SECONDS + 5) * 1000)
        with page.expect_navigation():
            page.click("#continue")
        assert page.url.endswith("/s/demo/trial")
        assert page.locator("form[data-trial].task-recognise").count() == 1
    finally:
        context.close()
    with app.app_context():
        participant = db.session.scalar(sa.select(Participant))
        assert (participant.distractor_answered, participant.distractor_correct) == (1, 1)
        held = participant.distractor_ended_at - participant.distractor_started_at
        assert held.total_seconds() >= SECONDS
