"""Frame timing of a sequential match, end to end in chromium: the script fills the timing
fields with what the frames achieved, the answer carries them, the trial stores them; without
the script the trial is stored as untimed, with no figures."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from survey.extensions import db
from survey.models import Block, Trial
from tests.helpers import refreeze, seed_quick_demo

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PHASES = {"fixation_ms": 300, "exposure_ms": 500, "mask_ms": 100, "isi_ms": 200}
TIMING_FIELDS = (
    "timing",
    "refresh_hz",
    "fixation_ms_achieved",
    "exposure_ms_achieved",
    "mask_ms_achieved",
    "isi_ms_achieved",
)


@pytest.fixture
def demo(app, monkeypatch):
    """The demo study with its match block shown sequentially with every phase."""
    study_id = seed_quick_demo(app, monkeypatch)
    with app.app_context():
        block = db.session.scalar(sa.select(Block).where(Block.task == "match"))
        block.settings = {**block.settings, "presentation": "sequential", **PHASES}
        db.session.commit()
        refreeze(study_id)
    return study_id


def first_trial(app) -> Trial:
    with app.app_context():
        trial = db.session.scalar(sa.select(Trial).where(Trial.answered_at.is_not(None)))
        db.session.expunge(trial)
        return trial


def test_the_frames_achieved_are_sent_and_stored(app, demo, live_server, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(f"{live_server}/s/demo")
        page.click("#agree")
        with page.expect_navigation():
            page.click("#begin")
        assert page.locator("form[data-trial] [data-timing]").count() == len(TIMING_FIELDS)
        page.locator("form[data-trial][data-shown]").wait_for(timeout=15000)
        posted = page.eval_on_selector_all(
            "[data-timing]", "els => Object.fromEntries(els.map(e => [e.name, e.value]))"
        )
        with page.expect_navigation():
            page.keyboard.press("j")
            page.keyboard.press("3")
    finally:
        page.close()
    assert posted["timing"] == "frames"
    refresh = float(posted["refresh_hz"])
    assert 20 <= refresh <= 500
    frame = 1000 / refresh
    trial = first_trial(app)
    assert trial.timing == "timed"
    assert trial.refresh_hz == pytest.approx(refresh, abs=0.01)
    for name, requested in PHASES.items():
        achieved = getattr(trial, name.replace("_ms", "_ms_achieved"))
        assert achieved == pytest.approx(float(posted[name.replace("_ms", "_ms_achieved")]))
        # Never shorter than the request by more than half a frame; a busy machine may drop
        # frames, so the upper bound is loose.
        assert requested - frame / 2 - 0.5 <= achieved <= requested + 10 * frame, (name, achieved)


def test_without_script_the_trial_is_stored_as_untimed(app, demo, live_server, browser):
    context = browser.new_context(viewport={"width": 390, "height": 844}, java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(f"{live_server}/s/demo")
        page.click("#agree")
        with page.expect_navigation():
            page.click("#begin")
        # Both photos show at once; no fixation cross or mask.
        assert page.locator(".stimulus.headshot").is_visible()
        assert page.locator(".stimulus.probe").is_visible()
        assert not page.locator(".stimulus.fixation").is_visible()
        assert not page.locator(".stimulus.mask").is_visible()
        page.click('label.choice:has(input[name="same"][value="1"])')
        page.click('label.choice:has(input[name="confidence"][value="4"])')
        with page.expect_navigation():
            page.click("button.next")
    finally:
        context.close()
    trial = first_trial(app)
    assert trial.task == "match"
    assert trial.timing == "untimed"
    assert trial.refresh_hz is None
    assert all(
        getattr(trial, name) is None
        for name in TIMING_FIELDS[2:]  # no figure stored for an untimed trial
    )
