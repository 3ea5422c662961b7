"""A participant takes a learn-then-recognise study in chromium, at phone and desktop sizes.

Study phase (timed headshots with a name label and an orienting question), a filler block,
then the test phase (new photos: met before?, confidence, and the name after a yes). The
stored answers and the exported rows (studied, the name chosen, correct) are checked against
what was answered and against the schedule.
"""

from __future__ import annotations

import csv
import io
import random

import pytest
import sqlalchemy as sa

from survey.exports import trials_csv
from survey.extensions import db
from survey.models import OPTIONS_SEPARATOR, Block, Participant, Response, Study, Trial
from tests.browser.helpers import read_questions
from tests.helpers import refreeze, seed_quick_demo

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
# Long enough that a page loaded on a busy machine (the suite runs more workers than cores) is
# still showing the headshot when the test looks at it.
EXPOSURE_MS = 1500


@pytest.fixture
def memory_study(app, monkeypatch):
    """The demo's identities in a memory study: learn, a detect filler, recognise."""
    study_id = seed_quick_demo(app, monkeypatch)
    with app.app_context():
        study = db.session.get(Study, study_id)
        for block in list(study.blocks):
            db.session.delete(block)
        db.session.flush()
        blocks = [
            (
                "meet",
                "learn",
                {
                    "exposure_ms": EXPOSURE_MS,
                    "label": "Your new colleague Dr {name}",
                    "orienting_question": "How friendly does this person look?",
                },
            ),
            ("filler", "detect", {"confidence": False, "n_identities": 4, "practice": False}),
            ("meet again", "recognise", {"confidence": True, "name_recall": True}),
        ]
        for position, (name, task, settings) in enumerate(blocks, start=1):
            db.session.add(
                Block(study=study, position=position, name=name, task=task, settings=settings)
            )
        study.n_lists = 4
        db.session.commit()
        refreeze(study_id)
    return study_id


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_learn_filler_recognise_stores_what_was_answered(
    app, memory_study, live_server, browser, viewport
):
    phone = viewport is PHONE
    rng = random.Random(viewport["width"])
    context = browser.new_context(viewport=viewport, is_mobile=phone, has_touch=phone)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    given: dict[int, dict[str, str]] = {}
    phases: list[str] = []
    try:
        page.goto(f"{live_server}/s/demo")
        page.click("#agree")
        with page.expect_navigation():
            page.click("#begin")
        while page.url.endswith("/s/demo/trial"):
            form = page.locator("form[data-trial]")
            form.wait_for()
            task = form.get_attribute("class").split("task-")[1].split()[0]
            trial = int(form.get_attribute("action").rsplit("/", 1)[1])
            if task == "learn":
                # The headshot and its label for the set time, answers waiting; then it goes.
                page.locator("form[data-trial][data-exposing]").wait_for(timeout=5000)
                assert page.locator(".stimulus").is_visible()
                label = page.locator(".stimulus figcaption").inner_text()
                assert label.startswith("Your new colleague Dr ")
                assert page.locator("fieldset[data-question] input").first.is_disabled()
                page.locator("form[data-trial][data-shown]").wait_for(timeout=5000)
                assert not page.locator(".stimulus").is_visible()
            else:
                page.locator("form[data-trial][data-shown]").wait_for()
            answers: dict[str, str] = {}
            with page.expect_navigation():
                questions = read_questions(page)
                for question in questions:
                    if question["kind"] == "names":
                        continue
                    choice = rng.choice(question["choices"])
                    if question["name"] == "old" and not any(
                        v.get("old") == "1" for v in given.values()
                    ):
                        choice = question["choices"][0]  # at least one yes, to see the names
                    answers[question["name"]] = choice["value"]
                    page.click(
                        f'label.choice:has(input[name="{question["name"]}"]'
                        f'[value="{choice["value"]}"])'
                    )
                    if question["name"] == "old":
                        names = page.locator("fieldset[data-question=names]")
                        assert names.is_visible() is (choice["value"] == "1")
                if answers.get("old") == "1":
                    value = rng.choice(["1", "2", "3", "4"])
                    answers["name"] = value
                    page.click(f'label.choice:has(input[name="name"][value="{value}"])')
            given[trial] = answers
            phases.append(task)
        page.wait_for_url("**/s/demo/questions")
        assert not problems, problems
    finally:
        context.close()

    # Study phase, then the filler, then the test phase.
    assert phases == ["learn"] * 4 + ["detect"] * 4 + ["recognise"] * 8
    with app.app_context():
        participant = db.session.scalar(sa.select(Participant))
        trials = {t.id: t for t in db.session.scalars(sa.select(Trial))}
        stored = db.session.execute(
            sa.select(Response.trial_id, Response.measure, Response.value, Response.rt_ms)
        ).all()
        exported = list(csv.DictReader(io.StringIO("".join(trials_csv(participant.study_id)))))
    expected = {(t, m, v) for t, a in given.items() for m, v in a.items()}
    assert {(t, m, v) for t, m, v, _ in stored} == expected and len(stored) == len(expected)
    assert all(rt is not None and rt > 0 for *_, rt in stored)
    # The timed study-phase answers came after the exposure.
    learn_rts = [rt for t, m, _, rt in stored if m == "orienting"]
    assert len(learn_rts) == 4 and all(rt > 0 for rt in learn_rts)

    studied = {t.identity_id for t in trials.values() if t.task == "learn"}
    test = [t for t in trials.values() if t.task == "recognise"]
    assert {t.identity_id for t in test if t.studied} == studied and len(test) == 8
    rows = {(int(r["trial"]), r["measure"]): r for r in exported}
    for t in test:
        old = rows[(t.id, "old")]
        assert old["studied"] == ("1" if t.studied else "0")
        assert old["correct"] == ("1" if (old["value"] == "1") == t.studied else "0")
        assert old["condition"] == (t.condition or "")
        if (t.id, "name") in rows:
            chosen = t.options.split(OPTIONS_SEPARATOR)[int(given[t.id]["name"]) - 1]
            name = rows[(t.id, "name")]
            assert name["value"] == chosen
            assert name["correct"] == ("1" if t.studied and chosen == t.label else "0")
    # Each study-phase headshot was timed on animation frames: the exposure achieved is stored
    # with the refresh rate, never shorter than asked by more than half a frame (a busy
    # machine may drop frames, so the upper bound is loose); nothing else is timed.
    for t in trials.values():
        if t.task != "learn":
            assert t.timing is None and t.exposure_ms_achieved is None
            continue
        assert t.timing == "timed" and 20 <= t.refresh_hz <= 500, t.timing
        frame = 1000 / t.refresh_hz
        assert EXPOSURE_MS - frame / 2 - 0.5 <= t.exposure_ms_achieved <= EXPOSURE_MS + 10 * frame
        assert t.fixation_ms_achieved is t.mask_ms_achieved is t.isi_ms_achieved is None
        exported_row = rows[(t.id, "orienting")]
        assert float(exported_row["exposure_ms_achieved"]) == t.exposure_ms_achieved
        assert exported_row["timing"] == "timed"


def test_without_script_a_timed_study_headshot_stays_and_is_stored_untimed(
    app, memory_study, live_server, browser
):
    context = browser.new_context(viewport=PHONE, java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(f"{live_server}/s/demo")
        page.click("#agree")
        with page.expect_navigation():
            page.click("#begin")
        # The headshot stays with its question; nothing is timed, and the trial says so.
        assert page.locator(".stimulus.single").is_visible()
        page.click('label.choice:has(input[name="orienting"][value="3"])')
        with page.expect_navigation():
            page.click("button.next")
    finally:
        context.close()
    with app.app_context():
        trial = db.session.scalar(sa.select(Trial).where(Trial.answered_at.is_not(None)))
        assert trial.task == "learn"
        assert trial.timing == "untimed"
        assert trial.exposure_ms_achieved is None and trial.refresh_hz is None
