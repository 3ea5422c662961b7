"""The delay before a memory study's test phase: a timed distractor that cannot be left early,
and a second session reached through a return link or code once its hours have passed."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, timedelta
from html import unescape

import pytest
import sqlalchemy as sa
from babel.dates import format_date, format_time

from survey import exports
from survey.extensions import db
from survey.models import Block, Participant, Response, Study, StudyMember, Trial
from survey.participant import delay
from survey.participant.simulate import agree
from tests.helpers import refreeze, sign_in
from tests.participant.support import answer_trials, trial_form

# The demo's trials before its test phase: match 10, rate 9, detect 8, learn 4.
BEFORE_TEST = 31


def _set_delay(app, study_id: int, **settings) -> None:
    with app.app_context():
        block = db.session.scalar(sa.select(Block).where(Block.task == "recognise"))
        block.settings = {**block.settings, **settings}
        db.session.commit()
        refreeze(study_id)


def _participant(app) -> Participant:
    with app.app_context():
        participant = db.session.scalar(sa.select(Participant))
        db.session.expunge(participant)
        return participant


def _shift(app, **columns) -> None:
    """Move the participant's delay times back by the given seconds."""
    with app.app_context():
        participant = db.session.scalar(sa.select(Participant))
        for name, seconds in columns.items():
            setattr(participant, name, getattr(participant, name) - timedelta(seconds=seconds))
        db.session.commit()


def _first_test_trial(app) -> Trial:
    with app.app_context():
        trial = db.session.scalar(
            sa.select(Trial).where(Trial.task == "recognise").order_by(Trial.position).limit(1)
        )
        db.session.expunge(trial)
        return trial


def _until_the_test(app, client, demo) -> None:
    agree(client, "demo")
    answer_trials(client, BEFORE_TEST)


def test_the_distractor_runs_its_time_and_counts_its_sums(app, client, demo):
    _set_delay(app, demo, distractor_s=30)
    _until_the_test(app, client, demo)
    page = client.get("/s/demo/trial")
    assert page.status_code == 302 and page.location.endswith("/s/demo/distractor")
    # The test trial was not shown, so it has no shown_at.
    assert _first_test_trial(app).shown_at is None
    intro = client.get("/s/demo/distractor").get_data(as_text=True)
    assert "simple sums for 30 seconds" in intro
    assert _participant(app).distractor_started_at is None
    assert client.post("/s/demo/distractor", data={"action": "start"}).status_code == 303
    participant = _participant(app)
    assert participant.distractor_started_at is not None

    # The sum asked is the participant's first; a right answer counts once, a repeat nothing.
    text, result = delay.problem(participant.seed, 0)
    page = client.get("/s/demo/distractor").get_data(as_text=True)
    assert f"{text} =" in page and 'http-equiv="refresh"' in page
    right = {"action": "answer", "number": "0", "answer": str(result)}
    assert client.post("/s/demo/distractor", data=right).status_code == 303
    assert client.post("/s/demo/distractor", data=right).status_code == 303
    _, second = delay.problem(participant.seed, 1)
    wrong = {"action": "answer", "number": "1", "answer": str(second + 1)}
    assert client.post("/s/demo/distractor", data=wrong).status_code == 303
    bad = client.post("/s/demo/distractor", data={**wrong, "number": "2", "answer": "forty"})
    assert bad.status_code == 400
    assert "Type the result as a number" in bad.get_data(as_text=True)
    participant = _participant(app)
    assert (participant.distractor_answered, participant.distractor_correct) == (2, 1)

    # Neither leaving early nor answering a test trial gets past it.
    early = client.post("/s/demo/distractor", data={"action": "continue"})
    assert early.status_code == 409
    assert "not over yet" in early.get_data(as_text=True)
    test = _first_test_trial(app)
    posted = client.post(f"/s/demo/trial/{test.id}", data={"old": "1", "confidence": "3"})
    assert posted.status_code == 303 and posted.location.endswith("/s/demo/trial")
    with app.app_context():
        assert (
            db.session.scalar(
                sa.select(sa.func.count()).select_from(Response).where(Response.trial_id == test.id)
            )
            == 0
        )
    assert _participant(app).distractor_ended_at is None

    # Once its time has passed (judged from the stored start), the test phase opens.
    _shift(app, distractor_started_at=31)
    page = client.get("/s/demo/distractor").get_data(as_text=True)
    assert "Time is up" in page
    late = {"action": "answer", "number": "2", "answer": "1"}
    client.post("/s/demo/distractor", data=late)  # too late to count
    assert _participant(app).distractor_answered == 2
    done = client.post("/s/demo/distractor", data={"action": "continue"})
    assert done.status_code == 303 and done.location.endswith("/s/demo/trial")
    assert trial_form(client).action.endswith(f"/trial/{test.id}")
    assert client.get("/s/demo/distractor").status_code == 303  # passed: back to the test

    # participants.csv says what the distractor held, and the codebook says what that means.
    with app.app_context():
        (row,) = csv.DictReader(io.StringIO("".join(exports.participants_csv(demo))))
        described = {e["name"] for e in exports.codebook(demo) if e["file"] == "participants.csv"}
    assert (row["distractor_answered"], row["distractor_correct"]) == ("2", "1")
    assert row["distractor_started_at"] and row["distractor_ended_at"]
    assert row["waiting_since"] == row["returned_at"] == ""
    assert set(exports.SESSION_COLUMNS) <= described


def test_a_second_session_opens_after_its_hours_through_the_link_or_the_code(app, client, demo):
    _set_delay(app, demo, delay_hours=48)
    _until_the_test(app, client, demo)
    page = client.get("/s/demo/trial")
    assert page.location.endswith("/s/demo/later")
    assert "in 2 days" in client.get("/s/demo/later").get_data(as_text=True)
    assert client.post("/s/demo/later").status_code == 303
    participant = _participant(app)
    assert participant.return_due_at - participant.waiting_since == timedelta(hours=48)
    shown = client.get("/s/demo/later").get_data(as_text=True)
    code = delay.shown_code(participant.return_code)
    assert code in shown
    link = re.search(r'class="return-url" href="([^"]+)"', shown).group(1)
    assert link.endswith(f"/s/demo/return?code={participant.return_code}")
    client.post("/s/demo/later")  # a repeat keeps the first code
    assert _participant(app).return_code == participant.return_code

    # A new browser, too early: a clear page with the date, and nothing changes.
    other = app.test_client()
    early = other.get(f"/s/demo/return?code={code.lower()}")
    assert early.status_code == 200 and "Come back later" in early.get_data(as_text=True)
    assert 47 * 3600 < int(early.headers["Retry-After"]) <= 48 * 3600
    refused = other.post("/s/demo/return", data={"code": participant.return_code})
    assert refused.status_code == 403
    assert _participant(app).returned_at is None
    # An unknown code says so.
    unknown = other.get("/s/demo/return?code=AAAAA-AAAAA")
    assert unknown.status_code == 404 and "not one of this study" in unknown.get_data(as_text=True)
    assert other.get("/s/demo/return?code=x").status_code == 404

    _shift(app, waiting_since=48 * 3600, return_due_at=48 * 3600)
    welcome = other.get(f"/s/demo/return?code={code}")
    assert "Welcome back" in welcome.get_data(as_text=True)
    back = other.post("/s/demo/return", data={"code": code})
    assert back.status_code == 303 and back.location.endswith("/s/demo/trial")
    assert _participant(app).returned_at is not None
    # The new browser carries on with the test phase.
    form = trial_form(other)
    assert form.action.endswith(f"/trial/{_first_test_trial(app).id}")
    with app.app_context():
        (row,) = csv.DictReader(io.StringIO("".join(exports.participants_csv(demo))))
    assert row["waiting_since"] and row["return_due_at"] and row["returned_at"]
    assert row["distractor_answered"] == "0"


def test_a_preview_run_opens_its_second_session_at_once(app, demo):
    _set_delay(app, demo, delay_hours=24)
    with app.app_context():
        participant = db.session.scalar(sa.select(Participant))
    assert participant is None
    with app.app_context():
        db.session.add(
            Participant(study_id=demo, list_index=0, seed=1, is_preview=True, public_id="p" * 32)
        )
        db.session.commit()
        preview = db.session.scalar(sa.select(Participant))
        delay.start_waiting(preview, delay.Delay(0, 24))
        db.session.refresh(preview)
        assert preview.return_due_at == preview.waiting_since
        assert delay.come_back(preview.id)


def test_waiting_participants_expire_from_the_time_the_test_opens(app, client, demo):
    from survey.models import utcnow
    from survey.participant.starting import expire_participants

    _set_delay(app, demo, delay_hours=48)
    _until_the_test(app, client, demo)
    client.post("/s/demo/later")
    # Started 30 hours ago: past the 24-hour limit, but the test opens only in 48 hours.
    _shift(app, waiting_since=0)
    with app.app_context():
        participant = db.session.scalar(sa.select(Participant))
        participant.started_at -= timedelta(hours=30)
        db.session.commit()
        assert expire_participants(db.session.connection(), utcnow()) == 0
        db.session.commit()
    _shift(app, return_due_at=(48 + 25) * 3600)
    with app.app_context():
        assert expire_participants(db.session.connection(), utcnow()) == 1
        db.session.commit()
    assert _participant(app).status == "expired"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"distractor_s": 601},
            "Distractor before the test must be a whole number between 0 and 600 s",
        ),
        (
            {"delay_hours": -1},
            "Second session after must be a whole number between 0 and 720 hours",
        ),
    ],
)
def test_delays_out_of_range_are_refused_in_plain_words(settings, message):
    from survey.block_settings import setting_errors

    errors = setting_errors("recognise", {**settings})
    assert any(message in m for messages in errors.values() for m in messages), errors


def test_the_monitor_and_the_lookup_show_who_waits_and_the_return_link(app, client, demo):
    _set_delay(app, demo, delay_hours=24)
    _until_the_test(app, client, demo)
    client.post("/s/demo/later")
    participant = _participant(app)
    with app.app_context():
        owner = db.session.scalar(
            sa.select(StudyMember.researcher_id).where(
                StudyMember.study_id == demo, StudyMember.role == "owner"
            )
        )
    researcher = app.test_client()
    sign_in(researcher, app, owner)
    summary = researcher.get(f"/r/studies/{demo}/monitor.json").get_json()
    assert summary["second_session"] == {"waiting": 1, "may_return": 0, "returned": 0}
    page = researcher.get(f"/r/studies/{demo}/monitor").get_data(as_text=True)
    assert "Waiting for their second session" in page and "second session from" in page
    found = researcher.get(
        f"/r/studies/{demo}/participants?public_id={participant.public_id}"
    ).get_data(as_text=True)
    assert f"/s/demo/return?code={participant.return_code}" in found
    assert delay.shown_code(participant.return_code) in found

    _shift(app, return_due_at=24 * 3600)
    summary = researcher.get(f"/r/studies/{demo}/monitor.json").get_json()
    assert summary["second_session"] == {"waiting": 0, "may_return": 1, "returned": 0}
    client.post("/s/demo/return", data={"code": participant.return_code})
    summary = researcher.get(f"/r/studies/{demo}/monitor.json").get_json()
    assert summary["second_session"] == {"waiting": 0, "may_return": 0, "returned": 1}
    # A study without a delay has no such figures.
    _set_delay(app, demo, delay_hours=0)
    assert researcher.get(f"/r/studies/{demo}/monitor.json").get_json()["second_session"] is None


def test_simulated_participants_go_straight_through_the_delay(app, demo):
    from survey.participant.simulate import simulate

    _set_delay(app, demo, distractor_s=60, delay_hours=24)
    outcomes = simulate(app, "demo", 2, seed=3)
    assert all(o.completed or o.stopped_early for o in outcomes)
    with app.app_context():
        done = db.session.scalars(
            sa.select(Participant).where(Participant.status == "completed")
        ).all()
        assert done and all(p.is_simulated for p in done)
        assert all(p.waiting_since is None and p.distractor_started_at is None for p in done)


# --- the delay pages in the participant's language ---------------------------------------------


def _languages(app, study_id: int, languages: list[str]) -> None:
    with app.app_context():
        study = db.session.get(Study, study_id)
        study.settings = {**(study.settings or {}), "languages": languages}
        db.session.commit()
        refreeze(study_id)


def _countdown(page: str) -> list[str]:
    found = re.search(r'data-countdown-texts="([^"]+)"', page).group(1)
    return json.loads(unescape(found))


def test_the_distractor_speaks_the_participants_language_with_its_plural_forms(app, client, demo):
    _languages(app, demo, ["en", "de", "ar"])
    _set_delay(app, demo, distractor_s=30)
    agree(client, "demo", "?lang=de")
    answer_trials(client, BEFORE_TEST)
    intro = client.get("/s/demo/distractor").get_data(as_text=True)
    assert "<title>Eine kurze Aufgabe" in intro
    assert "einfache Rechenaufgaben" in intro and "30 Sekunden lang" in intro
    assert "Mit den Aufgaben beginnen" in intro
    client.post("/s/demo/distractor", data={"action": "start"})
    page = client.get("/s/demo/distractor").get_data(as_text=True)
    texts = _countdown(page)
    assert len(texts) == 31 and texts[1] == "Verbleibende Zeit: 1 Sekunde"
    assert texts[30] == "Verbleibende Zeit: 30 Sekunden"
    bad = client.post("/s/demo/distractor", data={"action": "answer", "number": "0", "answer": "x"})
    assert bad.status_code == 400
    assert "Geben Sie das Ergebnis als Zahl ein, zum Beispiel 42." in bad.get_data(as_text=True)
    early = client.post("/s/demo/distractor", data={"action": "continue"})
    assert early.status_code == 409 and "noch nicht vorbei" in early.get_data(as_text=True)


def test_an_arabic_participants_return_pages_are_arabic_whatever_the_new_browser_says(
    app, client, demo
):
    _languages(app, demo, ["en", "de", "ar"])
    _set_delay(app, demo, delay_hours=48)
    agree(client, "demo", "?lang=ar")
    answer_trials(client, BEFORE_TEST)
    later = client.get("/s/demo/later").get_data(as_text=True)
    assert 'lang="ar" dir="rtl"' in later and "بعد يومين" in later  # "in two days", dual
    client.post("/s/demo/later")
    participant = _participant(app)
    shown = client.get("/s/demo/later").get_data(as_text=True)
    # The minute shown is rounded up: at the time shown the session is open.
    due = participant.return_due_at
    if due.second or due.microsecond:
        due = due.replace(second=0, microsecond=0) + timedelta(minutes=1)
    date = format_date(due, "full", locale="ar")
    time = format_time(due, "short", locale="ar", tzinfo=UTC)
    when = f"{date}، الساعة {time} بالتوقيت العالمي (UTC)"
    assert when in unescape(shown)
    assert f'datetime="{due.astimezone(UTC).isoformat()}"' in shown
    assert "%(time)s (بتوقيتك المحلي)" in unescape(shown)  # the script's words, from the page

    # A new browser asking for English: the participant's language still.
    other = app.test_client()
    headers = {"Accept-Language": "en"}
    early = other.get(f"/s/demo/return?code={participant.return_code}", headers=headers)
    text = unescape(early.get_data(as_text=True))
    assert early.status_code == 200 and "عُد لاحقًا" in text and when in text
    unknown = other.get("/s/demo/return?code=AAAAA-AAAAA", headers=headers)
    assert unknown.status_code == 404 and "That code is not one of this study" in unknown.get_data(
        as_text=True
    )
    # The code form keeps the language it was read in for its answer.
    form = other.get("/s/demo/return?lang=ar", headers=headers).get_data(as_text=True)
    assert '<input type="hidden" name="lang" value="ar">' in form
    wrong = other.get("/s/demo/return?lang=ar&code=AAAAA-AAAAA", headers=headers)
    assert "هذا الرمز لا يخص هذه الدراسة" in wrong.get_data(as_text=True)
    _shift(app, waiting_since=48 * 3600, return_due_at=48 * 3600)
    welcome = other.get(f"/s/demo/return?code={participant.return_code}", headers=headers)
    assert "أهلًا بعودتك" in welcome.get_data(as_text=True)
