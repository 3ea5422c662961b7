"""The demo study in German and in Arabic on a phone, from the link to the completion code.

Every page is checked for what a longer language or a right-to-left one breaks: nothing wider
than the screen, no button whose words are cut, the page mirrored in Arabic while a choice of
the left or the right photo keeps its sides (arrow keys included). Screenshots of each kind of
page are saved under /tmp/shots-i18n/ for a person to look at.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from survey.extensions import db
from survey.models import Participant, Response, Study, StudyText, Trial
from tests.browser.helpers import answer_by_pointer, read_questions, stored_as
from tests.helpers import DEMO_TRIALS, refreeze, seed_quick_demo

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PHONE = {"width": 390, "height": 844}
PHONE_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0 Mobile Safari/537.36"
)
SHOTS = Path("/tmp/shots-i18n")
WORDS = {
    "de": {
        "agree": "Ich stimme zu, Studie starten",
        "begin": "Beginnen",
        "send": "Absenden und beenden",
        "done": "Vielen Dank, Sie sind fertig",
    },
    "ar": {
        "agree": "أوافق، ابدأ الدراسة",
        "begin": "ابدأ",
        "send": "إرسال وإنهاء",
        "done": "شكرًا لك، لقد انتهيت",
    },
}

# The demo's title in each language (its other texts are read in English, the default's).
TITLES = {
    "de": "Gesichter und erste Eindrücke (Demo)",
    "ar": "الوجوه والانطباعات الأولى (عرض تجريبي)",
}

# Past the instructions: the first trial, or a page before it (a block's instructions).
PAST_INSTRUCTIONS = re.compile(r".*/s/demo/(trial|step)$")


@pytest.fixture
def demo(app, monkeypatch):
    """The demo study in English, German and Arabic (its title written in each); returns its
    id."""
    study_id = seed_quick_demo(app, monkeypatch)
    with app.app_context():
        study = db.session.get(Study, study_id)
        study.settings = {**(study.settings or {}), "languages": ["en", "de", "ar"]}
        for language, title in TITLES.items():
            db.session.add(StudyText(study_id=study_id, language=language, key="title", text=title))
        db.session.commit()
        refreeze(study_id)
    return study_id


def check_page(page, name: str) -> None:
    """Nothing is wider than the screen, no button cuts its words; save a screenshot."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    wide = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert wide <= 1, f"{name}: the page is {wide}px wider than the screen"
    cut = page.eval_on_selector_all(
        "button, .button, input[type=submit], label.choice > span, .withdraw-link, legend",
        """els => els.filter(e => e.offsetParent !== null).filter(e => {
            const r = e.getBoundingClientRect();
            return e.scrollWidth > e.clientWidth + 1 || r.left < -1 || r.right > innerWidth + 1;
        }).map(e => e.textContent.trim())""",
    )
    assert not cut, f"{name}: cut or off-screen: {cut}"


def take_demo(page, base: str, language: str, rng: random.Random) -> dict[int, dict[str, str]]:
    """Take the demo in `language` by taps, from the study link to the completion code,
    checking and photographing the first page of each kind; return the answers given."""
    words = WORDS[language]
    page.goto(f"{base}/s/demo?PROLIFIC_PID=phone{language}&lang={language}")
    assert page.get_attribute("html", "lang") == language
    assert page.locator("h1").inner_text() == TITLES[language]
    assert page.locator(".survey-title").inner_text() == TITLES[language]
    check_page(page, f"{language}-consent")
    page.get_by_role("button", name=words["agree"]).tap()
    page.wait_for_url("**/s/demo/instructions")
    check_page(page, f"{language}-instructions")
    page.get_by_role("link", name=words["begin"]).tap()
    page.wait_for_url(PAST_INSTRUCTIONS)
    given: dict[int, dict[str, str]] = {}
    seen: set[str] = set()
    steps = 0
    while page.url.endswith(("/s/demo/trial", "/s/demo/step")):
        if page.url.endswith("/s/demo/step"):  # a block's instructions or a break
            steps += 1
            check_page(page, f"{language}-step-{steps}")
            with page.expect_navigation():
                page.locator(".step-page button[type=submit]").tap()
            continue
        form = page.locator("form[data-trial][data-shown]")
        form.wait_for(timeout=15000)
        trial = int(form.get_attribute("action").rsplit("/", 1)[1])
        task = form.get_attribute("class").split("task-")[1].split()[0]
        if task not in seen:
            seen.add(task)
            check_page(page, f"{language}-trial-{task}")
            if language == "ar":
                check_mirrored(page, task)
        with page.expect_navigation():
            given[trial] = answer_by_pointer(page, rng, lambda p, selector: p.tap(selector))
    assert steps, "the demo's block instructions and break pages were met"
    page.wait_for_url("**/s/demo/questions")
    check_page(page, f"{language}-questions")
    page.tap('label.choice:has(input[name="ai_familiarity"][value="4"])')
    page.get_by_role("button", name=words["send"]).tap()
    page.wait_for_url("**/s/demo/done")
    assert page.locator("h1").inner_text() == words["done"]
    assert page.locator("#completion-code").inner_text() == "LIKENESS-DEMO"
    check_page(page, f"{language}-done")
    return given


def check_mirrored(page, task: str) -> None:
    """Arabic: the page runs from the right; the left and right photo stay where they say."""
    assert page.get_attribute("html", "dir") == "rtl"
    header = page.locator(".survey-header").bounding_box()
    withdraw = page.locator(".withdraw-link").bounding_box()
    # The header's last item (the withdraw link) sits at its left end.
    assert withdraw["x"] - header["x"] < header["width"] / 2
    if task == "choose":
        left = page.locator("figure.stimulus.left").bounding_box()
        right = page.locator("figure.stimulus.right").bounding_box()
        assert left["x"] < right["x"]
        left_button = page.locator('label.choice:has(input[value="left"])').bounding_box()
        right_button = page.locator('label.choice:has(input[value="right"])').bounding_box()
        assert left_button["x"] < right_button["x"]
    if task == "match":
        # Two buttons run from the right: the first answer on the right, answered with J, the
        # right-hand key; F answers the button on the left.
        same = page.locator('label.choice:has(input[name="same"][value="1"])')
        different = page.locator('label.choice:has(input[name="same"][value="0"])')
        assert same.bounding_box()["x"] > different.bounding_box()["x"]
        assert same.locator("input").get_attribute("data-key") == "j"
        assert different.locator("input").get_attribute("data-key") == "f"


@pytest.mark.parametrize("language", ["de", "ar"])
def test_the_demo_on_a_phone_in_german_and_arabic(app, demo, live_server, browser, language):
    rng = random.Random(f"phone-{language}")
    context = browser.new_context(
        viewport=PHONE, is_mobile=True, has_touch=True, user_agent=PHONE_UA, locale="en-US"
    )
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    try:
        given = take_demo(page, live_server, language, rng)
        assert not problems, problems
    finally:
        context.close()
    with app.app_context():
        participant = db.session.scalar(sa.select(Participant))
        assert participant.language == language and participant.status == "completed"
        left = dict(db.session.execute(sa.select(Trial.id, Trial.left_source)).all())
        stored = db.session.execute(sa.select(Response.trial_id, Response.measure, Response.value))
        stored = {tuple(row) for row in stored}
    assert len(given) == DEMO_TRIALS and stored == stored_as(given, left)


def test_arabic_keys_mean_the_side_of_the_screen(app, demo, live_server, browser):
    """In Arabic, F answers the button on the left and the arrow keys the photo on their side."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        page.goto(f"{live_server}/s/demo?lang=ar")
        check_page(page, "ar-desktop-consent")
        page.click("#agree")
        page.click("#begin")
        form = page.locator("form[data-trial][data-shown]")
        form.wait_for(timeout=15000)
        check_page(page, "ar-desktop-trial-match")
        # The match block's first trial: F, the left-hand key, picks the left button.
        page.keyboard.press("f")
        checked = page.locator('input[name="same"]:checked')
        left_button = page.locator('label.choice:has(input[name="same"][value="0"])')
        assert checked.get_attribute("value") == "0" and left_button.bounding_box()["x"] < 640
        # On to the choose block: everything else answered by keyboard, sides by arrows.
        choose_trials = []
        while page.url.endswith(("/s/demo/trial", "/s/demo/step")):
            if page.url.endswith("/s/demo/step"):  # a block's instructions or a break
                with page.expect_navigation():
                    page.focus(".step-page button[type=submit]")
                    page.keyboard.press("Enter")
                continue
            form = page.locator("form[data-trial][data-shown]")
            form.wait_for(timeout=15000)
            task = form.get_attribute("class").split("task-")[1].split()[0]
            trial = int(form.get_attribute("action").rsplit("/", 1)[1])
            with page.expect_navigation():
                if task == "choose":
                    if not choose_trials:
                        check_page(page, "ar-desktop-trial-choose")
                    page.keyboard.press("ArrowLeft")
                    choose_trials.append(trial)
                else:
                    answer_first_by_keys(page)
        assert choose_trials
    finally:
        context.close()
    with app.app_context():
        stored = dict(
            db.session.execute(
                sa.select(Response.trial_id, Response.value).where(Response.measure == "choice")
            ).all()
        )
        left = dict(
            db.session.execute(
                sa.select(Trial.id, Trial.left_source).where(Trial.id.in_(choose_trials))
            ).all()
        )
    # ArrowLeft chose the photo on the left of the screen: stored as its source.
    assert {trial: stored[trial] for trial in choose_trials} == left


def answer_first_by_keys(page) -> None:
    """Answer a trial with the first shortcut of each question (Enter for a Continue)."""
    questions = read_questions(page)
    if not questions:
        page.keyboard.press("Enter")
        return
    for question in questions:
        if question["kind"] == "names":
            continue  # asked only after a yes; the first answers below say no where asked
        keys = [c["key"] for c in question["choices"] if c["key"]]
        if question["name"] == "old":
            no = next(c for c in question["choices"] if c["value"] == "0")
            page.keyboard.press(no["key"])
        else:
            page.keyboard.press(keys[0])


def test_german_on_a_desktop(app, demo, live_server, browser):
    """The longer German words on a desktop screen: the consent, the first trial, withdrawing."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        page.goto(f"{live_server}/s/demo?lang=de")
        check_page(page, "de-desktop-consent")
        page.click("#agree")
        page.click("#begin")
        page.locator("form[data-trial][data-shown]").wait_for(timeout=15000)
        check_page(page, "de-desktop-trial-match")
        withdraw = page.locator(".withdraw-link").inner_text()
        assert withdraw == "Zurückziehen und meine Antworten löschen"
        page.click(".withdraw-link")
        check_page(page, "de-desktop-withdraw")
    finally:
        context.close()
