"""What several browser tests do: read a trial's questions, take a study as a participant,
open a browser signed in as a researcher."""

from __future__ import annotations

import random

from tests.helpers import sign_in


def researcher_context(browser, app, live_server: str, researcher_id: int, **options):
    """Return a new browser context signed in as the researcher (`options`: the context's,
    such as the viewport or java_script_enabled)."""
    context = browser.new_context(**options)
    client = app.test_client()
    sign_in(client, app, researcher_id)
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": live_server}])
    return context


def read_questions(page) -> list[dict]:
    """Return the trial's questions: field name, kind and each choice's value and shortcut."""
    return page.eval_on_selector_all(
        "fieldset[data-question]",
        """groups => groups.map(g => ({
            kind: g.dataset.question,
            name: g.querySelector('input[type=radio]').name,
            choices: Array.from(g.querySelectorAll('input[type=radio]')).map(
                i => ({value: i.value, key: i.dataset.key || ''}))
        }))""",
    )


def answer_by_keyboard(page, rng: random.Random) -> dict[str, str]:
    """Answer the trial shown with the keyboard, at random; return {field: value}.

    A study-phase trial without a question is left with Enter (its Continue); a name is
    chosen (with Tab and Space: names have no shortcut) only after a yes.
    """
    given: dict[str, str] = {}
    questions = read_questions(page)
    if not questions:
        page.keyboard.press("Enter")
        return {"seen": "1"}
    for question in questions:
        if question["kind"] == "names":
            if given.get("old") != "1":
                continue
            choice = rng.choice(question["choices"])
            page.focus(f'input[name="name"][value="{choice["value"]}"]')
            page.keyboard.press("Space")
            given["name"] = choice["value"]
            # Choosing with the keyboard does not send the answer: Enter does.
            page.keyboard.press("Enter")
            continue
        choice = rng.choice(question["choices"])
        page.keyboard.press(choice["key"])
        given[question["name"]] = choice["value"]
    return given


def answer_by_pointer(page, rng: random.Random, press) -> dict[str, str]:
    """Answer the trial shown at random by tapping or clicking (`press(page, selector)`); return
    {field: value}. A study-phase trial without a question is left with its Continue; a name
    is chosen only after a yes. The questions are read before the first answer: after a
    Continue the next page may already be loading."""
    questions = read_questions(page)
    if not questions:
        press(page, "button.next")
        return {"seen": "1"}
    answers: dict[str, str] = {}
    for question in questions:
        if question["kind"] == "names" and answers.get("old") != "1":
            continue
        choice = rng.choice(question["choices"])
        answers[question["name"]] = choice["value"]
        radio = f'input[name="{question["name"]}"][value="{choice["value"]}"]'
        press(page, f"label.choice:has({radio})")
    return answers


def stored_as(
    given: dict[int, dict[str, str]], left_source: dict[int, str | None]
) -> set[tuple[int, str, str]]:
    """Return the (trial, measure, value) rows the answers given are stored as: a choice of
    side as the source shown there, a scale by its key."""
    expected = set()
    for trial, answers in given.items():
        for name, value in answers.items():
            if name == "choice":
                left = left_source[trial]
                value = left if value == "left" else ({"real", "ai"} - {left}).pop()
            expected.add((trial, name.removeprefix("scale_"), value))
    return expected


def take_study(page, base: str, slug: str, query: str, rng: random.Random) -> int:
    """Take the study as a participant does with the keyboard, from the link to the done page.

    Answers each trial at random and the age question; returns the number of trials answered.
    """
    page.goto(f"{base}/s/{slug}{query}")
    for selector, url in (
        ("#agree", f"**/s/{slug}/instructions"),
        ("#begin", f"**/s/{slug}/trial"),
    ):
        page.focus(selector)
        page.keyboard.press("Enter")
        page.wait_for_url(url)
    answered = 0
    while page.url.endswith((f"/s/{slug}/trial", f"/s/{slug}/step")):
        if page.url.endswith(f"/s/{slug}/step"):  # block instructions or a break
            with page.expect_navigation():
                page.focus(".step-page button[type=submit]")
                page.keyboard.press("Enter")
            continue
        page.locator("form[data-trial][data-shown]").wait_for(timeout=15000)
        with page.expect_navigation():
            answer_by_keyboard(page, rng)
        answered += 1
    page.wait_for_url(f"**/s/{slug}/questions")
    page.get_by_text("25–34").click()
    page.get_by_role("button", name="Send and finish").click()
    page.wait_for_url(f"**/s/{slug}/done")
    return answered
