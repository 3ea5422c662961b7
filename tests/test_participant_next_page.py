"""The trial page after an answer: read by the statement that stored the answer (PostgreSQL)."""

from __future__ import annotations

import pytest

from survey.models import Response
from survey.participant import hotdb, routes, service
from survey.participant.simulate import agree
from tests.test_participant_answers import responses
from tests.test_participant_support import (
    answer_trials,
    count,
    first_answers,
    participants,
    trial_form,
    trial_id,
    demo,  # noqa: F401 (a fixture)
)


@pytest.fixture
def page_reads(monkeypatch) -> list[str]:
    """Count the trial pages read from the database (page_state calls)."""
    calls: list[str] = []
    original = service.page_state

    def counted(slug, public_id, secret=None):
        calls.append(public_id)
        return original(slug, public_id, secret)

    monkeypatch.setattr(service, "page_state", counted)
    return calls


def on_postgres(app) -> bool:
    """Tell whether the app's hot path runs on PostgreSQL (where answers read the next page)."""
    with app.app_context():
        return hotdb.is_postgres()


def post(client, form, data=None):
    """Answer a trial form as a browser does (with its ticket)."""
    return client.post(form.action, data={**(data or first_answers(form)), **form.hidden})


def test_the_page_after_an_answer_needs_no_query_and_is_the_next_trial(
    app, client, demo, page_reads
):
    agree(client, "demo")
    first = trial_form(client)
    assert post(client, first).status_code == 303
    page_reads.clear()
    second = trial_form(client)
    assert page_reads == ([] if on_postgres(app) else [participants(app)[0].public_id])
    assert trial_id(second) != trial_id(first)
    # What the database says now, read afresh: the same trial, the same ticket.
    with app.test_request_context():
        fresh = service.page_state("demo", participants(app)[0].public_id, app.secret_key)
    assert fresh.current.id == trial_id(second) and fresh.ticket == second.ticket
    assert fresh.current.total == second.total
    # The kept page is shown once: a reload reads the database.
    page_reads.clear()
    assert trial_id(trial_form(client)) == trial_id(second)
    assert len(page_reads) == 1


def test_a_page_kept_too_long_is_read_again(app, client, demo, page_reads, monkeypatch):
    agree(client, "demo")
    assert post(client, trial_form(client)).status_code == 303
    clock = routes.time.monotonic() + routes.NEXT_PAGE_SECONDS + 1
    monkeypatch.setattr(routes.time, "monotonic", lambda: clock)
    page_reads.clear()
    assert trial_form(client) is not None
    assert len(page_reads) == 1


def test_a_kept_page_overtaken_by_another_tab_stores_nothing_twice(app, client, demo):
    agree(client, "demo")
    first = trial_form(client)
    assert post(client, first).status_code == 303
    # Another tab of the same participant reads and answers the next trial before this tab
    # follows its redirect.
    (p,) = participants(app)
    with app.test_request_context():
        fresh = service.page_state("demo", p.public_id, app.secret_key)
        target = service.answer_target("demo", p.public_id, fresh.current.id)
        assert service.store_answer(target, [("same", "0"), ("confidence", "5")], None) == (
            service.STORED
        )
    before = count(app, Response)
    # On PostgreSQL this tab is shown the kept page: the trial just answered elsewhere. Its
    # answer is refused as a repeat (nothing stored, the first answer kept) and the next page
    # is the current one. (Elsewhere the page is read afresh and shows the current trial.)
    shown = trial_form(client)
    stale = trial_id(shown) == fresh.current.id
    assert stale == on_postgres(app)
    reply = post(client, shown)
    assert reply.status_code == 303
    assert count(app, Response) == before + (0 if stale else len(shown.choices))
    assert responses(app, fresh.current.id) == {"same": ("0", None), "confidence": ("5", None)}
    current = trial_form(client)
    assert trial_id(current) not in (trial_id(first), fresh.current.id)
    if not stale:
        assert trial_id(current) != trial_id(shown)


def test_the_last_answer_leads_on_from_the_kept_page(app, client, demo):
    agree(client, "demo")
    answer_trials(client, 34)
    last = trial_form(client)
    reply = post(client, last)
    assert reply.status_code == 303
    after = client.get(reply.headers["Location"])
    assert after.status_code == 302 and after.headers["Location"].endswith("/s/demo/questions")
    assert participants(app)[0].status == "completed"


def test_withdrawing_drops_the_kept_page(app, client, demo):
    agree(client, "demo")
    assert post(client, trial_form(client)).status_code == 303
    # Withdrawn (from this tab's withdraw page) before the redirect was followed.
    assert client.post("/s/demo/withdraw", data={"confirm": "y"}).status_code == 303
    assert participants(app)[0].status == "withdrawn"
    after = client.get("/s/demo/trial")
    assert after.status_code == 302 and after.headers["Location"].endswith("/s/demo/withdrawn")
