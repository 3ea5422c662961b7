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
EXPOSURE_MS = 600


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
