"""A participant takes the demo study in chromium, from the link to the completion code.

Four runs: the keyboard and clicks (taps on the phone), at a phone and a desktop viewport. Each
answers every trial, checks that the trial fits the screen with large enough targets, and
finally compares the stored answers with what it answered, response times included.
"""

from __future__ import annotations

import random

import pytest
import sqlalchemy as sa

from survey.extensions import db
from survey.models import Participant, Response, Trial
from tests.browser.helpers import answer_by_keyboard, answer_by_pointer, read_questions, stored_as
from tests.helpers import DEMO_TRIALS, refreeze, seed_quick_demo


@pytest.fixture
def demo(app, monkeypatch):
    """The demo study, seeded quickly; returns its id."""
    return seed_quick_demo(app, monkeypatch)


pytestmark = [pytest.mark.browser, pytest.mark.slow]

PHONE = {"width": 375, "height": 667}
DESKTOP = {"width": 1280, "height": 800}
MIN_TARGET_PX = 44
PHONE_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0 Mobile Safari/537.36"
)


def tap_or_click(page, selector: str, phone: bool) -> None:
    """Tap on a touch screen, click elsewhere."""
    if phone:
        page.tap(selector)
    else:
        page.click(selector)


def check_layout(page, phone: bool) -> None:
    """The trial fits the viewport without scrolling; every answer button is 44 px or more."""
    fits = page.evaluate(
        "document.documentElement.scrollHeight <= window.innerHeight + 1 && "
        "document.documentElement.scrollWidth <= window.innerWidth + 1"
    )
    assert fits, "the trial does not fit the screen"
    sizes = page.eval_on_selector_all(
        "label.choice > span, button.next",
        # Only what shows: a name question waits, hidden, for a yes.
        "els => els.filter(e => e.offsetParent !== null).map(e => {"
        " const r = e.getBoundingClientRect(); return [r.width, r.height]; })",
    )
    assert sizes and all(w >= MIN_TARGET_PX and h >= MIN_TARGET_PX for w, h in sizes), sizes
    if phone:
        assert page.evaluate("window.innerWidth") == PHONE["width"]


@pytest.mark.parametrize("mode", ["keyboard", "clicks"])
@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_demo_from_link_to_completion_code(app, demo, live_server, browser, viewport, mode):
    phone = viewport is PHONE
    keyboard = mode == "keyboard"
    rng = random.Random(f"{viewport['width']}-{mode}")
    context = browser.new_context(
        viewport=viewport, is_mobile=phone, has_touch=phone, user_agent=PHONE_UA if phone else None
    )
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on(
        "console",
        lambda msg: (
            problems.append(msg.text)
            if msg.type == "error" and not msg.location.get("url", "").endswith("/favicon.ico")
            else None
        ),
    )
    try:
        page.goto(f"{live_server}/s/demo?PROLIFIC_PID=browser{viewport['width']}{mode}")
        # The demo's title for participants, which does not say what the study compares.
        assert page.locator("h1").inner_text().startswith("Faces and first impressions")
        for selector, url in (("#agree", "**/s/demo/instructions"), ("#begin", "**/s/demo/trial")):
            if keyboard:
                page.focus(selector)
                page.keyboard.press("Enter")
            else:
                tap_or_click(page, selector, phone)
            page.wait_for_url(url)

        given: dict[int, dict[str, str]] = {}
        steps: list[str] = []
        while page.url.endswith(("/s/demo/trial", "/s/demo/step")):
            if page.url.endswith("/s/demo/step"):
                # A page between trials (the demo's break, the memory test's instructions):
                # its one button, which fits the screen and is easy to hit.
                button = page.locator(".step-page button[type=submit]").first
                box = button.bounding_box()
                assert box and box["height"] >= MIN_TARGET_PX
                steps.append(page.locator("h1").inner_text())
                with page.expect_navigation():
                    if keyboard:
                        button.focus()
                        page.keyboard.press("Enter")
                    else:
                        tap_or_click(page, ".step-page button[type=submit]", phone)
                continue
            form = page.locator("form[data-trial][data-shown]")
            form.wait_for(timeout=15000)
            trial = int(form.get_attribute("action").rsplit("/", 1)[1])
            assert trial not in given, "a trial came back after it was answered"
            check_layout(page, phone)
            with page.expect_navigation():
                if keyboard:
                    answers = answer_by_keyboard(page, rng)
                else:
                    answers = answer_by_pointer(
                        page, rng, lambda p, selector: tap_or_click(p, selector, phone)
                    )
            given[trial] = answers

        assert steps == ["A short break", "Instructions"]
        page.wait_for_url("**/s/demo/questions")
        familiar = 'input[name="ai_familiarity"][value="4"]'
        if keyboard:
            page.focus(familiar)
            page.keyboard.press("Space")
            page.focus("#save")
            page.keyboard.press("Enter")
        else:
            tap_or_click(page, f"label.choice:has({familiar})", phone)
            tap_or_click(page, "#save", phone)
        page.wait_for_url("**/s/demo/done")
        assert page.locator("#completion-code").inner_text() == "LIKENESS-DEMO"
        assert not problems, problems
    finally:
        context.close()

    with app.app_context():
        participant = db.session.scalar(sa.select(Participant))
        assert participant.status == "completed"
        assert participant.device == ("mobile" if phone else "desktop")
        assert participant.demographics == {"ai_familiarity": 4}
        assert participant.flow_step == 2 and participant.next_step_at is None
        left = dict(db.session.execute(sa.select(Trial.id, Trial.left_source)).all())
        stored = db.session.execute(
            sa.select(Response.trial_id, Response.measure, Response.value, Response.rt_ms)
        ).all()
    expected = stored_as(given, left)
    assert len(given) == len(left) == DEMO_TRIALS
    assert {(t, m, v) for t, m, v, _ in stored} == expected and len(stored) == len(expected)
    assert all(rt is not None and 0 < rt < 60_000 for *_, rt in stored)


def test_without_script_the_survey_works_and_rt_stays_empty(app, demo, live_server, browser):
    context = browser.new_context(viewport=PHONE, java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(f"{live_server}/s/demo")
        page.click("#agree")
        with page.expect_navigation():
            page.click("#begin")
        for _ in range(3):
            for question in read_questions(page):
                page.click(f'label.choice:has(input[name="{question["name"]}"])')
            with page.expect_navigation():
                page.click("button.next")
        assert page.locator("progress").get_attribute("value") == "3"
    finally:
        context.close()
    with app.app_context():
        rows = db.session.execute(sa.select(Response.trial_id, Response.rt_ms)).all()
    assert len({t for t, _ in rows}) == 3
    assert all(rt is None for _, rt in rows)


def test_sequential_match_shows_the_headshot_then_the_probe(app, demo, live_server, browser):
    from survey.models import Block

    with app.app_context():
        block = db.session.scalar(sa.select(Block).where(Block.task == "match"))
        block.settings = {**block.settings, "presentation": "sequential", "exposure_ms": 3000}
        db.session.commit()
        refreeze(block.study_id)
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    try:
        page.goto(f"{live_server}/s/demo")
        page.click("#agree")
        page.click("#begin")
        page.locator("form[data-trial][data-exposing]").wait_for(timeout=5000)
        assert page.locator(".stimulus.headshot").is_visible()
        assert not page.locator(".stimulus.probe").is_visible()
        assert page.locator("fieldset[data-question] input").first.is_disabled()
        page.locator("form[data-trial][data-shown]").wait_for(timeout=10000)
        assert page.locator(".stimulus.probe").is_visible()
        assert not page.locator(".stimulus.headshot").is_visible()
        with page.expect_navigation():
            page.keyboard.press("j")
            page.keyboard.press("3")
    finally:
        context.close()
    with app.app_context():
        values = dict(db.session.execute(sa.select(Response.measure, Response.value)).all())
        rts = db.session.scalars(sa.select(Response.rt_ms)).all()
    assert values == {"same": "0", "confidence": "3"}
    assert all(rt is not None for rt in rts)
