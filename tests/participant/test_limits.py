"""Bots and abandoned sessions: start limits per address and per study, suspicious starts on the
monitor, and participants who expire, freeing their list slot while their answers are kept."""

from __future__ import annotations

import threading
from datetime import timedelta

import sqlalchemy as sa

from survey.extensions import db
from survey.models import Participant, ParticipantStart, Response, Study, Trial, utcnow
from survey.participant import hotdb, starting
from survey.participant.simulate import agree
from survey.researcher import monitoring
from tests.helpers import DEMO_TRIALS, set_study
from tests.participant.support import answer_trials, count, participants, trial_form


def from_address(app, address: str):
    """Return a fresh browser (no cookies) whose requests come from `address`."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


# --- start limits -------------------------------------------------------------------------------


def test_a_script_from_one_address_cannot_fill_a_study(app, demo):
    """60 scripted consents from one address once filled a study with target N 50."""
    set_study(app, demo, target_n=50)
    outcomes = [agree(from_address(app, "203.0.113.9"), "demo") for _ in range(60)]
    started = [r for r in outcomes if r.status_code == 303]
    refused = [r for r in outcomes if r.status_code == 429]
    # The default lets a lab of 40 seats behind one address in, and no more in ten minutes.
    assert (len(started), len(refused)) == (40, 20)
    page = refused[0].get_data(as_text=True)
    assert "Please try again in a few minutes" in page and "Nothing was recorded" in page
    assert refused[0].headers["Retry-After"] == "600"
    assert count(app, Participant) == 40
    with app.app_context():
        study = db.session.get(Study, demo)
        assert (study.participants_started, study.starts_refused) == (40, 20)
        assert starting.is_full(study) is False
    # People elsewhere still get in; the study never filled.
    assert agree(from_address(app, "198.51.100.7"), "demo").status_code == 303
    # Once the window has passed, the same address may start again.
    with app.app_context():
        db.session.execute(sa.update(ParticipantStart).values(at=utcnow() - timedelta(minutes=11)))
        db.session.commit()
    assert agree(from_address(app, "203.0.113.9"), "demo").status_code == 303


def test_the_address_behind_a_trusted_proxy_is_the_one_counted(app, demo):
    app.config["STARTS_PER_ADDRESS"] = 2
    # Without TRUSTED_PROXIES a forwarded address is not believed: all come from the proxy.
    for n, forwarded in enumerate(["192.0.2.1", "192.0.2.2", "192.0.2.3"]):
        client = from_address(app, "10.0.0.1")
        client.environ_base["HTTP_X_FORWARDED_FOR"] = forwarded
        assert agree(client, "demo").status_code == (303 if n < 2 else 429)


def test_behind_a_trusted_proxy_each_visitor_is_counted_apart(
    app, demo, database_url, tmp_path, monkeypatch
):
    from survey import create_app

    monkeypatch.setenv("TRUSTED_PROXIES", "1")
    proxied = create_app(
        {
            "DATABASE_URL": database_url,
            "MEDIA_DIR": app.config["MEDIA_DIR"],
            "SECRET_KEY": app.config["SECRET_KEY"],
            "WTF_CSRF_ENABLED": False,
            "STARTS_PER_ADDRESS": 2,
        }
    )
    try:
        codes = []
        for forwarded in ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.3", "192.0.2.3"]:
            client = from_address(proxied, "10.0.0.1")
            client.environ_base["HTTP_X_FORWARDED_FOR"] = forwarded
            codes.append(agree(client, "demo").status_code)
        assert codes == [303, 303, 303, 303, 429]
    finally:
        with proxied.app_context():
            db.engine.dispose()
        hotdb.hot_path.dispose(proxied)


def test_the_per_study_burst_limit_counts_every_address(app, demo):
    app.config["STARTS_PER_MINUTE"] = 5
    codes = [agree(from_address(app, f"192.0.2.{i}"), "demo").status_code for i in range(7)]
    assert codes == [303] * 5 + [429] * 2
    with app.app_context():
        assert db.session.get(Study, demo).starts_refused == 2


def test_resuming_is_never_limited(app, client, demo):
    app.config["STARTS_PER_ADDRESS"] = 1
    agree(client, "demo")
    answer_trials(client, 2)
    assert agree(from_address(app, "127.0.0.1"), "demo").status_code == 429
    assert client.get("/s/demo").headers["Location"].endswith("/s/demo/trial")
    assert trial_form(client) is not None


def test_simultaneous_starts_from_one_address_cannot_pass_the_limit(app, demo):
    """Counted under the study's row lock: a burst of starts sees each other (real threads)."""
    app.config["STARTS_PER_ADDRESS"] = 4
    barrier = threading.Barrier(10)
    started, refused, errors = [], [], []

    def run() -> None:
        try:
            with app.app_context():
                study = db.session.get(Study, demo)
                db.session.rollback()
                barrier.wait()
                try:
                    start = starting.start_or_resume(study, address="203.0.113.50")
                    started.append(start.participant_id)
                except starting.StudyUnavailable as exc:
                    refused.append(exc.reason)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len(started) == 4 and refused == ["busy"] * 6
    with app.app_context():
        study = db.session.get(Study, demo)
        assert (study.participants_started, study.starts_refused) == (4, 6)


def test_the_monitor_shows_the_suspicious_starts(app, client, demo, auth):
    app.config["STARTS_PER_ADDRESS"] = 1
    assert agree(from_address(app, "203.0.113.9"), "demo").status_code == 303
    for _ in range(3):
        assert agree(from_address(app, "203.0.113.9"), "demo").status_code == 429
    with app.app_context():
        study = db.session.get(Study, demo)
        assert monitoring.summary(study, utcnow())["starts_refused"] == 3
        owner = study.members[0].researcher_id
    auth.sign_in(owner)
    page = client.get(f"/r/studies/{demo}/monitor").get_data(as_text=True)
    assert 'data-figure="starts_refused">3<' in page and "Suspicious starts" in page
    assert client.get(f"/r/studies/{demo}/monitor.json").get_json()["starts_refused"] == 3


# --- expiry -------------------------------------------------------------------------------------


def started_hours_ago(app, participant_id: int, hours: float) -> None:
    """Move a participant's start back in time."""
    with app.app_context():
        db.session.execute(
            sa.update(Participant)
            .where(Participant.id == participant_id)
            .values(started_at=utcnow() - timedelta(hours=hours))
        )
        db.session.commit()


def test_an_abandoned_participant_expires_and_frees_its_slot(app, client, demo):
    set_study(app, demo, target_n=1)
    agree(client, "demo")
    answer_trials(client, 3)
    assert trial_form(client) is not None  # the page after the last answer (kept or read)
    (gone,) = participants(app)
    newcomer = app.test_client()
    assert newcomer.get("/s/demo").status_code == 403  # full while the first is in progress
    started_hours_ago(app, gone.id, 25)
    # Past PARTICIPANT_EXPIRE_HOURS (24) the slot is free: the study is no longer full.
    assert agree(newcomer, "demo").status_code == 303
    first, second = participants(app)
    assert (first.status, second.status) == ("expired", "in_progress")
    assert first.expired_at is not None and first.completed_at is None
    assert second.list_index == first.list_index  # the freed slot went to the newcomer
    with app.app_context():
        kept = db.session.scalar(
            sa.select(sa.func.count())
            .select_from(Response)
            .where(Response.participant_id == gone.id)
        )
    assert kept > 0
    # The abandoned participant's browser gets a clear page, and stores nothing more.
    page = client.get("/s/demo")
    assert page.status_code == 410 and "Your time for this study has run out" in page.text
    assert client.get("/s/demo/trial").headers["Location"].endswith("/s/demo")
    assert client.get("/s/demo/instructions").headers["Location"].endswith("/s/demo")
    assert count(app, Response) == kept
    # Its answers are exported as partial, with the time it expired.
    from survey import exports

    with app.app_context():
        rows = {
            line.split(",")[0]: line
            for line in "".join(exports.participants_csv(demo)).splitlines()[1:]
        }
        trials = "".join(exports.trials_csv(demo))
    # An id that starts with "-" is written with the CSV-injection guard's leading quote.
    gone_row, second_row = (rows[exports.safe_cell(p.public_id)] for p in (gone, second))
    assert gone_row.split(",")[2] == "partial"
    assert gone_row.split(",")[10].startswith(str(first.expired_at.year))
    assert second_row.split(",")[10] == ""
    assert gone.public_id in trials
    # It may still withdraw its answers.
    assert client.post("/s/demo/withdraw", data={"confirm": "1"}).status_code == 303
    assert participants(app)[0].status == "withdrawn"


def test_an_answer_posted_after_expiry_is_not_stored(app, client, demo):
    agree(client, "demo")
    answer_trials(client, 2)
    form = trial_form(client)
    (p,) = participants(app)
    started_hours_ago(app, p.id, 30)
    assert agree(app.test_client(), "demo").status_code == 303  # a start marks it expired
    before = count(app, Response)
    answer = {name: values[0] for name, values in form.choices.items()}
    response = client.post(form.action, data={**answer, **form.hidden})
    assert response.status_code == 410
    assert "Your time for this study has run out" in response.text
    assert count(app, Response) == before
    assert participants(app)[0].status == "expired"


def test_expiry_spares_finished_and_recent_participants_and_can_be_turned_off(
    app, client, runner, demo
):
    agree(client, "demo")
    answer_trials(client, DEMO_TRIALS)
    done = participants(app)[0]
    recent = app.test_client()
    agree(recent, "demo")
    old = app.test_client()
    agree(old, "demo")
    _, recent_p, old_p = participants(app)
    for p in (done, old_p):
        started_hours_ago(app, p.id, 48)
    started_hours_ago(app, recent_p.id, 23)
    app.config["PARTICIPANT_EXPIRE_HOURS"] = 0
    assert (
        "Expired 0 participant(s) (expiry is off)."
        in runner.invoke(args=["expire-participants"]).output
    )
    app.config["PARTICIPANT_EXPIRE_HOURS"] = 24
    assert "Expired 1 participant(s)." in runner.invoke(args=["expire-participants"]).output
    assert [p.status for p in participants(app)] == ["completed", "in_progress", "expired"]
    assert "Expired 0 participant(s)." in runner.invoke(args=["expire-participants"]).output


def test_the_migration_adds_expiry_and_goes_both_ways(app, demo):
    from pathlib import Path

    from flask_migrate import downgrade, upgrade

    migrations = str(Path(__file__).resolve().parents[2] / "migrations")
    with app.app_context():
        study = db.session.get(Study, demo)
        expired = starting.start_or_resume(study).participant_id
        db.session.execute(
            sa.update(Participant)
            .where(Participant.id == expired)
            .values(status="expired", expired_at=utcnow())
        )
        db.session.commit()
        # Memory trials (learn, recognise) go with a downgrade past 0011_memory, which adds
        # their tasks; every other trial must come back.
        others = sa.select(sa.func.count()).where(Trial.task.not_in(("learn", "recognise")))
        trials = db.session.scalar(others)
        db.session.remove()
        downgrade(directory=migrations, revision="0002")
        with db.engine.connect() as conn:
            status = conn.execute(
                sa.text("SELECT status FROM participant WHERE id = :id"), {"id": expired}
            ).scalar()
            columns = {c["name"] for c in sa.inspect(conn).get_columns("participant")}
        assert status == "in_progress" and "expired_at" not in columns
        upgrade(directory=migrations)
        # SQLite rebuilds the tables: nothing that refers to them may be lost on the way.
        assert db.session.scalar(others) == trials > 0
        db.session.execute(
            sa.update(Participant).where(Participant.id == expired).values(status="expired")
        )
        db.session.commit()
        assert db.session.get(Study, demo).starts_refused == 0
