"""The trial page after an answer: read from the database on every request, never kept."""

from __future__ import annotations

import pytest

from survey.models import Response
from survey.participant import answers
from survey.participant.simulate import agree
from tests.helpers import DEMO_TRIALS
from tests.participant.support import (
    answer_trials,
    count,
    first_answers,
    participants,
    responses,
    trial_form,
    trial_id,
)


@pytest.fixture
def page_reads(monkeypatch) -> list[str]:
    """Count the trial pages read from the database (page_state calls)."""
    calls: list[str] = []
    original = answers.page_state

    def counted(slug, public_id, secret=None):
        calls.append(public_id)
        return original(slug, public_id, secret)

    monkeypatch.setattr(answers, "page_state", counted)
    return calls


def post(client, form, data=None):
    """Answer a trial form as a browser does (with its ticket)."""
    return client.post(form.action, data={**(data or first_answers(form)), **form.hidden})


def test_the_page_after_an_answer_is_read_from_the_database_and_is_the_next_trial(
    app, client, demo, page_reads
):
    agree(client, "demo")
    first = trial_form(client)
    assert post(client, first).status_code == 303
    page_reads.clear()
    second = trial_form(client)
    assert page_reads == [participants(app)[0].public_id]
    assert trial_id(second) != trial_id(first)
    # What the database says now, read afresh: the same trial, the same ticket.
    with app.test_request_context():
        fresh = answers.page_state("demo", participants(app)[0].public_id, app.secret_key)
    assert fresh.current.id == trial_id(second) and fresh.ticket == second.ticket
    assert fresh.current.total == second.total


def test_a_page_overtaken_by_another_tab_shows_the_current_trial(app, client, demo):
    agree(client, "demo")
    first = trial_form(client)
    assert post(client, first).status_code == 303
    # Another tab of the same participant reads and answers the next trial before this tab
    # follows its redirect.
    (p,) = participants(app)
    with app.test_request_context():
        fresh = answers.page_state("demo", p.public_id, app.secret_key)
        target = answers.answer_target("demo", p.public_id, fresh.current.id)
        assert answers.store_answer(target, [("same", "0"), ("confidence", "5")], None) == (
            answers.STORED
        )
    before = count(app, Response)
    # This tab is shown the trial after the one answered elsewhere (never that one again),
    # and its answer is stored.
    shown = trial_form(client)
    assert trial_id(shown) not in (trial_id(first), fresh.current.id)
    assert post(client, shown).status_code == 303
    assert count(app, Response) == before + len(shown.choices)
    assert responses(app, fresh.current.id) == {"same": ("0", None), "confidence": ("5", None)}


def test_the_last_answer_leads_on_to_the_questions(app, client, demo):
    agree(client, "demo")
    answer_trials(client, DEMO_TRIALS - 1)
    last = trial_form(client)
    reply = post(client, last)
    assert reply.status_code == 303
    after = client.get(reply.headers["Location"])
    assert after.status_code == 302 and after.headers["Location"].endswith("/s/demo/questions")
    assert participants(app)[0].status == "completed"


def test_a_participant_who_withdrew_after_an_answer_sees_no_trial(app, client, demo):
    agree(client, "demo")
    assert post(client, trial_form(client)).status_code == 303
    # Withdrawn (from this tab's withdraw page) before the redirect was followed.
    assert client.post("/s/demo/withdraw", data={"confirm": "y"}).status_code == 303
    assert participants(app)[0].status == "withdrawn"
    after = client.get("/s/demo/trial")
    assert after.status_code == 302 and after.headers["Location"].endswith("/s/demo/withdrawn")
