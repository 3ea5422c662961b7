"""The end of a study: the debrief's way back to the platform, and what a withdrawal asks for."""

from __future__ import annotations

import html
import re

import pytest
import sqlalchemy as sa

from survey import ending
from survey.extensions import db
from survey.models import Participant
from survey.participant.simulate import agree
from tests.helpers import set_study
from tests.participant.support import participants

PROLIFIC_URL = "https://app.prolific.com/submissions/complete?cc=C0DE"
# One link per platform the recruitment parameters recognise (service.PLATFORM_PARAMS).
LINKS = {
    "prolific": "?PROLIFIC_PID=p1&STUDY_ID=s1&SESSION_ID=x1",
    "mturk": "?workerId=W1&assignmentId=A1&hitId=H1",
    "sona": "?id=12345",
    "link": "?pid=panel-7",
}
REFRESH = re.compile(r'<meta http-equiv="refresh" content="([^"]*)">')


def finish(app, client, query: str = "") -> None:
    """Start a participant and mark them completed, as the last answer does."""
    assert agree(client, "demo", query).status_code == 303
    with app.app_context():
        db.session.execute(
            sa.update(Participant).values(status="completed", demographics={"age": "skip"})
        )
        db.session.commit()


def done_page(client) -> str:
    """Return the debrief page's HTML."""
    response = client.get("/s/demo/done")
    assert response.status_code == 200
    return response.get_data(as_text=True)


# --- the debrief ------------------------------------------------------------------------------


def test_the_debrief_has_a_return_button_and_never_leaves_by_default(app, client, demo):
    set_study(app, demo, completion_url=PROLIFIC_URL, settings={})
    finish(app, client, LINKS["prolific"])
    page = done_page(client)
    assert f'href="{html.escape(PROLIFIC_URL)}"' in page and "Return to Prolific" in page
    assert "LIKENESS-DEMO" in page
    assert REFRESH.search(page) is None and "data-redirect-after" not in page
    assert "page stays open until you select" in page


def test_the_debrief_leaves_after_the_researchers_delay_and_says_when(app, client, demo):
    set_study(app, demo, completion_url=PROLIFIC_URL, settings={"return_redirect_s": 45})
    finish(app, client, LINKS["prolific"])
    page = done_page(client)
    (refresh,) = REFRESH.findall(page)
    # The meta refresh works without script; its URL is the researcher's link, escaped once.
    assert html.unescape(refresh) == f"45; url={PROLIFIC_URL}"
    assert 'data-redirect-after="45"' in page
    note = re.search(r"<p[^>]*data-redirect-note[^>]*>(.*?)</p>", page, re.S).group(1)
    assert "back to Prolific automatically" in note and "45 seconds after it opened" in note
    # The debrief is on the page that leaves, not skipped.
    assert "study-text" in page


def test_the_automatic_return_needs_a_completion_link(app, client, demo):
    set_study(app, demo, completion_url="", settings={"return_redirect_s": 45})
    finish(app, client, LINKS["prolific"])
    page = done_page(client)
    assert REFRESH.search(page) is None and "Return to" not in page


@pytest.mark.parametrize("stored", [3, 500, "30", True, 12.5])
def test_a_stored_delay_out_of_range_leaves_the_page_where_it_is(app, client, demo, stored):
    set_study(app, demo, completion_url=PROLIFIC_URL, settings={"return_redirect_s": stored})
    finish(app, client, LINKS["prolific"])
    page = done_page(client)
    assert REFRESH.search(page) is None and "Return to Prolific" in page


def test_a_preview_run_stays_on_the_debrief(app, client, demo):
    set_study(app, demo, completion_url=PROLIFIC_URL, settings={"return_redirect_s": 10})
    finish(app, client, LINKS["prolific"])
    with app.app_context():
        db.session.execute(sa.update(Participant).values(is_preview=True))
        db.session.commit()
    page = done_page(client)
    assert REFRESH.search(page) is None and "Return to Prolific" in page


def test_the_delay_bounds():
    assert ending.redirect_delay({}) is None
    assert ending.redirect_delay(None) is None
    assert ending.redirect_delay({"return_redirect_s": 5}) == 5
    assert ending.redirect_delay({"return_redirect_s": 120}) == 120
    assert ending.redirect_delay({"return_redirect_s": 4}) is None
    assert ending.redirect_delay({"return_redirect_s": 121}) is None
    assert ending.redirect_problem(None) is None
    assert ending.redirect_problem(4) == (
        "The automatic return delay must be between 5 and 120 seconds; you wrote 4."
    )
    assert "whole number of seconds" in ending.redirect_problem("10")


# --- withdrawal -------------------------------------------------------------------------------


WORDING = {
    "prolific": "Please return your submission on Prolific by selecting 'Stop without completing'",
    "mturk": "Please return this HIT on Amazon Mechanical Turk by selecting 'Return'",
    "sona": "You do not need to do anything on SONA",
    "link": "you do not need to enter a completion code there. You can close this page.",
}


@pytest.mark.parametrize("platform", sorted(LINKS))
def test_a_withdrawal_says_what_to_do_on_the_platform(app, client, demo, platform):
    assert agree(client, "demo", LINKS[platform]).status_code == 303
    (p,) = participants(app)
    assert p.source == platform
    confirm = html.unescape(client.get("/s/demo/withdraw").get_data(as_text=True))
    assert WORDING[platform] in confirm
    assert client.post("/s/demo/withdraw", data={"confirm": "1"}).status_code == 303
    page = html.unescape(client.get("/s/demo/withdrawn").get_data(as_text=True))
    assert "Your answers have been deleted" in page
    assert WORDING[platform] in page
    # Each platform gets its own words and never another's.
    for other, words in WORDING.items():
        if other != platform:
            assert words not in page
