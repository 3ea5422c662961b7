"""Closing a study stops its participants in progress: no answer is stored after the close.

They are told the study has closed; what they answered stays (a partial response) unless they
withdraw; a reopened study lets them go on. An answer racing the close is stored before it or
refused, never stored after it (PostgreSQL: real threads and row locks).
"""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from survey.extensions import db
from survey.models import Participant, Response, Study, StudyMember
from survey.participant.simulate import agree, form_token
from survey.studies import change_state
from tests.helpers import DEMO_TRIALS, set_study
from tests.participant.support import (
    answer_trials,
    count,
    first_answers,
    participants,
    trial_form,
    trial_id,
)


def move(app, study_id: int, *states: str) -> int:
    """Move the study through states as a researcher does; return the answer rows right after."""
    with app.app_context():
        for state in states:
            change_state(db.session.get(Study, study_id), state, None)
            db.session.commit()
        return db.session.scalar(sa.select(sa.func.count()).select_from(Response))


def post(client, form):
    """Answer a trial form with first choices, as a browser does (with its ticket)."""
    return client.post(form.action, data={**first_answers(form), **form.hidden, "rt_ms": "850"})


def is_closed_page(response) -> bool:
    """Tell whether a response is the "this study has closed" page."""
    return response.status_code == 410 and "This study has closed" in response.get_data(
        as_text=True
    )


@pytest.mark.parametrize("states", [("closed",), ("closed", "archived")])
def test_a_closed_or_archived_study_stores_no_more_answers_and_says_so(app, client, demo, states):
    agree(client, "demo")
    answer_trials(client, 2)
    form = trial_form(client)  # shown before the close, with its ticket
    stored = move(app, demo, *states)
    assert stored == 4  # two match trials of two measures each, before the close
    assert is_closed_page(post(client, form))
    assert is_closed_page(client.get("/s/demo/trial"))
    assert is_closed_page(client.get("/s/demo/instructions"))
    # Resuming from the link leads to the same page.
    resumed = client.get("/s/demo")
    assert resumed.status_code == 302 and is_closed_page(client.get(resumed.headers["Location"]))
    assert count(app, Response) == stored
    (p,) = participants(app)
    assert p.status == "in_progress" and p.completed_at is None  # a partial response
    # They can still withdraw, and their answers go.
    page = client.get("/s/demo/withdraw")
    assert page.status_code == 200
    token = form_token(page.get_data(as_text=True)) or ""
    reply = client.post("/s/demo/withdraw", data={"csrf_token": token, "confirm": "y"})
    assert reply.status_code == 303
    assert participants(app)[0].status == "withdrawn" and count(app, Response) == 0


def test_an_answer_without_its_ticket_is_refused_after_the_close_too(app, client, demo):
    agree(client, "demo")
    form = trial_form(client)
    move(app, demo, "closed")
    # No ticket: the answer is read from the database first, which says the study closed.
    reply = client.post(form.action, data={**first_answers(form), "rt_ms": "850"})
    assert is_closed_page(reply)
    assert count(app, Response) == 0


def test_a_reopened_study_lets_participants_in_progress_go_on(app, client, demo):
    agree(client, "demo")
    answer_trials(client, 1)
    form = trial_form(client)
    move(app, demo, "closed", "open")
    assert post(client, form).status_code == 303
    assert count(app, Response) == 4
    assert trial_id(trial_form(client)) != trial_id(form)


def test_a_participant_who_finished_before_the_close_gets_the_debrief_and_no_questions(
    app, client, demo
):
    agree(client, "demo")
    answer_trials(client, DEMO_TRIALS)
    assert participants(app)[0].status == "completed"
    move(app, demo, "closed")
    questions = client.get("/s/demo/questions")
    assert questions.status_code == 303 and questions.headers["Location"].endswith("/done")
    client.post("/s/demo/questions", data={"age": "34", "gender": "woman"})
    assert participants(app)[0].demographics in (None, {})
    done = client.get("/s/demo/done")
    assert done.status_code == 200 and "LIKENESS-DEMO" in done.get_data(as_text=True)


def test_preview_runs_answer_in_a_draft_and_cannot_start_in_a_closed_study(
    app, client, demo, make_researcher, auth
):
    set_study(app, demo, state="draft")
    editor = make_researcher(email="editor@example.org")
    with app.app_context():
        db.session.add(StudyMember(study_id=demo, researcher_id=editor, role="editor"))
        db.session.commit()
    auth.sign_in(editor)
    assert client.post("/s/demo/preview", data={"start": "1"}).status_code == 303
    agree(client, "demo")
    answer_trials(client, 2)
    assert count(app, Response) == 4
    set_study(app, demo, state="closed")
    refused = client.post("/s/demo/preview", data={"start": "1"})
    assert refused.status_code == 409
    assert count(app, Participant) == 1
    assert is_closed_page(client.get("/s/demo/trial"))


# --- racing the close (PostgreSQL) ------------------------------------------------------------


def wait_until_blocked(app, needle: str) -> None:
    """Wait until a backend of the test database waits for a lock in a statement with `needle`."""
    with app.app_context():
        for _ in range(200):
            waiting = db.session.scalar(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND query ILIKE :needle"
                ),
                {"needle": f"%{needle}%"},
            )
            db.session.commit()
            if waiting:
                return
            time.sleep(0.05)
    raise AssertionError(f"no statement with {needle!r} came to wait for a lock")


@pytest.mark.postgres
def test_an_answer_under_way_when_the_study_closes_is_stored_before_the_close(app, demo):
    """The answer's statement has begun (its snapshot sees the study open) and waits on a row
    lock when the close comes: the close waits for it, so the answer is stored before it."""
    client = app.test_client()
    agree(client, "demo")
    form = trial_form(client)
    with app.app_context():
        holder = db.engine.connect()
    holder.execute(
        sa.text("SELECT id FROM trial WHERE id = :id FOR UPDATE"), {"id": trial_id(form)}
    )
    replies, after_close = [], []
    answering = threading.Thread(target=lambda: replies.append(post(client, form)))
    closing = threading.Thread(target=lambda: after_close.append(move(app, demo, "closed")))
    try:
        answering.start()
        wait_until_blocked(app, "UPDATE trial")
        closing.start()
        closing.join(timeout=1.0)
        close_waited = closing.is_alive()
    finally:
        holder.rollback()
        holder.close()
        answering.join(timeout=30)
        closing.join(timeout=30)
    assert replies[0].status_code == 303
    # Stored, and counted by the first read after the close: nothing came after it.
    assert after_close == [2] and count(app, Response) == 2
    assert close_waited  # for the answer under way
    with app.app_context():
        assert db.session.get(Study, demo).state == "closed"


@pytest.mark.postgres
def test_an_answer_that_comes_while_the_study_closes_is_refused(app, demo):
    """The close waits for another write of the participant table when the answer comes: the
    answer waits behind the close and then finds the study closed; nothing is stored."""
    client = app.test_client()
    agree(client, "demo")
    form = trial_form(client)
    (p,) = participants(app)
    with app.app_context():
        holder = db.engine.connect()
    # Another write of the participant table, not yet committed, holds the close back.
    holder.execute(sa.text("UPDATE participant SET device = device WHERE id = :id"), {"id": p.id})
    replies, after_close = [], []
    closing = threading.Thread(target=lambda: after_close.append(move(app, demo, "closed")))
    answering = threading.Thread(target=lambda: replies.append(post(client, form)))
    try:
        closing.start()
        wait_until_blocked(app, "LOCK TABLE participant")
        answering.start()
        wait_until_blocked(app, "UPDATE trial")
    finally:
        holder.rollback()
        holder.close()
        for thread in (closing, answering):
            if thread.ident is not None:
                thread.join(timeout=30)
    assert after_close == [0]
    assert is_closed_page(replies[0])
    assert count(app, Response) == 0


@pytest.mark.postgres
def test_answers_racing_a_close_are_all_stored_before_it_or_refused(app, demo):
    """Participants answer as fast as they can in threads while the study closes."""
    clients = [app.test_client() for _ in range(6)]
    for index, each in enumerate(clients):
        agree(each, "demo", f"?PROLIFIC_PID=RACE{index}")
    stop = threading.Event()

    def answer_on(each) -> None:
        while not stop.is_set():
            form = trial_form(each)
            if form is None:
                return
            post(each, form)

    threads = [threading.Thread(target=answer_on, args=(each,)) for each in clients]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    after_close = move(app, demo, "closed")
    time.sleep(0.3)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert after_close > 0
    assert count(app, Response) == after_close
