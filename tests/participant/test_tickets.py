"""Answer tickets: signed, bound to one trial of one participant, never revealing the real side."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from survey.cache import BoundedCache
from survey.extensions import db
from survey.models import Response, Trial
from survey.participant import tickets
from survey.participant.hotdb import hot_path
from survey.participant.simulate import agree
from tests.participant.support import (
    TASK_FIELDS,
    advance_to,
    count,
    first_answers,
    participants,
    responses,
    trial_at,
    trial_form,
    trial_id,
)

SECRET = "ticket-test-secret"
TICKET = tickets.Ticket("choose", False, True, "real", "0123456789abcdef")


def test_a_ticket_reads_back_only_for_its_trial_participant_study_and_key():
    raw = tickets.issue(SECRET, "demo", "pub-a", 41, TICKET)
    assert tickets.read(SECRET, "demo", "pub-a", 41, raw) == TICKET
    assert tickets.read(SECRET, "demo", "pub-a", 42, raw) is None
    assert tickets.read(SECRET, "demo", "pub-b", 41, raw) is None
    assert tickets.read(SECRET, "other", "pub-a", 41, raw) is None
    assert tickets.read("another-secret", "demo", "pub-a", 41, raw) is None
    assert tickets.read(SECRET.encode(), "demo", "pub-a", 41, raw) == TICKET


def side(raw: str) -> str:
    """Return the side digit of a ticket."""
    return raw.split(".")[3]


def flip_side(raw: str) -> str:
    """Return the ticket with its side digit flipped."""
    parts = raw.split(".")
    parts[3] = "1" if parts[3] == "0" else "0"
    return ".".join(parts)


@pytest.mark.parametrize(
    "damage",
    [
        lambda raw: "",
        lambda raw: "x" * 60,
        lambda raw: raw[:-1],
        lambda raw: raw + "A",
        # Another task, attention flag, last flag, side or settings key under the same signature.
        lambda raw: raw.replace("choose.", "rate.", 1),
        lambda raw: raw.replace(".0.1.", ".1.1.", 1),
        lambda raw: raw.replace(".0.1.", ".0.0.", 1),
        lambda raw: flip_side(raw),
        lambda raw: raw.replace("0123456789abcdef", "fedcba9876543210"),
        lambda raw: raw.replace(".", "|"),
        lambda raw: raw + "\x00",
    ],
)
def test_a_damaged_ticket_reads_as_none(damage):
    raw = tickets.issue(SECRET, "demo", "pub-a", 41, TICKET)
    assert damage(raw) != raw
    assert tickets.read(SECRET, "demo", "pub-a", 41, damage(raw)) is None


def test_the_side_shown_real_cannot_be_read_from_the_tickets():
    # The same side on many trials: the visible digit must look like a coin toss, never the side.
    for left in ("real", "ai"):
        ticket = tickets.Ticket("choose", False, False, left, "0123456789abcdef")
        issued = [tickets.issue(SECRET, "demo", "pub-a", n, ticket) for n in range(1, 201)]
        ones = sum(side(raw) == "1" for raw in issued)
        # 200 fair coin tosses fall within 70-130 ones with probability 1 - 2e-5.
        assert 70 <= ones <= 130, ones
        for n, raw in enumerate(issued, start=1):
            assert tickets.read(SECRET, "demo", "pub-a", n, raw).left_source == left
    # Other tasks carry no side at all.
    plain = tickets.issue(
        SECRET, "demo", "pub-a", 7, tickets.Ticket("rate", True, False, None, "0123456789abcdef")
    )
    assert (
        plain.startswith("rate.1.0.-.")
        and tickets.read(SECRET, "demo", "pub-a", 7, plain).left_source is None
    )


def test_the_trial_page_carries_a_ticket_naming_what_the_answer_needs(app, client, demo):
    agree(client, "demo")
    form = trial_form(client)
    (p,) = participants(app)
    ticket = tickets.read(app.secret_key, "demo", p.public_id, trial_id(form), form.ticket)
    assert ticket is not None
    with app.app_context():
        trial = db.session.get(Trial, trial_id(form))
        total = db.session.scalar(
            sa.select(sa.func.count()).select_from(Trial).where(Trial.participant_id == p.id)
        )
        assert ticket == tickets.Ticket(
            trial.task,
            trial.is_attention,
            trial.position == total,
            trial.left_source if trial.task == "choose" else None,
            ticket.settings_key,
        )
    # The ticket does not name the condition, the identity or the participant's row.
    assert trial.condition not in form.ticket.split(".")
    assert str(p.id) not in form.ticket.split(".")


def test_another_participants_ticket_is_not_taken_and_the_answer_is_checked(
    app, client, demo, lookups
):
    agree(client, "demo")
    other = app.test_client()
    agree(other, "demo")
    mine, theirs = trial_form(client), trial_form(other)
    # Their page's ticket, sent with my answer to my trial: not valid for me; the long way.
    response = client.post(mine.action, data={**first_answers(mine), "ticket": theirs.ticket})
    assert response.status_code == 303
    assert lookups == [trial_id(mine)]
    assert len(responses(app, trial_id(mine))) == len(mine.choices)
    # My ticket with an answer to their trial: refused, nothing stored for them.
    lookups.clear()
    response = client.post(theirs.action, data={**first_answers(theirs), "ticket": mine.ticket})
    assert response.status_code == 404
    assert responses(app, trial_id(theirs)) == {}


def test_a_ticket_for_a_later_trial_stores_nothing(app, client, demo):
    agree(client, "demo")
    current = trial_form(client)
    (p,) = participants(app)
    later = trial_at(app, p.id, 5)
    later_id, task = later.id, later.task
    settings_key = tickets.read(
        app.secret_key, "demo", p.public_id, trial_id(current), current.ticket
    ).settings_key
    forged = tickets.issue(
        app.secret_key,
        "demo",
        p.public_id,
        later_id,
        tickets.Ticket(task, False, False, None, settings_key),
    )
    data = {
        "same": "1",
        "confidence": "3",
        "scale_trust": "4",
        "scale_professional": "4",
        "source": "ai",
        "ticket": forged,
    }
    response = client.post(f"/s/demo/trial/{later_id}", data=data)
    assert response.status_code == 400
    assert "Please answer the questions in order" in response.get_data(as_text=True)
    assert count(app, Response) == 0
    assert trial_id(trial_form(client)) == trial_id(current)


def test_settings_this_worker_has_not_seen_send_the_answer_the_long_way(
    app, client, demo, lookups, monkeypatch
):
    agree(client, "demo")
    form = trial_form(client)
    # As after a restart, or when another worker showed the page.
    with app.app_context():
        kept = hot_path.state()
    monkeypatch.setattr(kept, "settings_by_key", BoundedCache(kept.settings_by_key.maxsize))
    monkeypatch.setattr(kept, "block_settings", BoundedCache(kept.block_settings.maxsize))
    response = client.post(form.action, data={**first_answers(form), **form.hidden})
    assert response.status_code == 303
    assert lookups == [trial_id(form)]
    assert len(responses(app, trial_id(form))) == len(form.choices)


def test_a_valid_ticket_does_not_let_an_invalid_answer_through(app, client, demo, lookups):
    agree(client, "demo")
    form = advance_to(client, TASK_FIELDS["match"])
    before = count(app, Response)
    response = client.post(form.action, data={**form.hidden, "same": "1", "confidence": "9"})
    assert response.status_code == 400
    assert "Your answer was not saved" in response.get_data(as_text=True)
    assert count(app, Response) == before and responses(app, trial_id(form)) == {}
    assert trial_id(trial_form(client)) == trial_id(form)
