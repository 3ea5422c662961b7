"""When each trial was shown: stamped by the trial page, once, from the database's clock."""

from __future__ import annotations

import csv
import io
from datetime import datetime

import sqlalchemy as sa

from survey import exports
from survey.extensions import db
from survey.models import Trial
from survey.participant import hotdb
from survey.participant.simulate import agree
from tests.helpers import set_study
from tests.participant.support import answer_trials, participants, trial_form, trial_id


def stamps(app) -> dict[int, tuple]:
    """Return {trial id: (position, shown_at, answered_at)} of every trial."""
    with app.app_context():
        rows = db.session.execute(
            sa.select(Trial.id, Trial.position, Trial.shown_at, Trial.answered_at)
        ).all()
    return {r.id: (r.position, r.shown_at, r.answered_at) for r in rows}


def test_the_trial_page_stamps_its_trial_once_and_reloads_keep_the_first_time(app, client, demo):
    agree(client, "demo")
    assert all(shown is None for _p, shown, _a in stamps(app).values())
    first = trial_id(trial_form(client))
    shown = stamps(app)[first][1]
    assert shown is not None and shown.utcoffset().total_seconds() == 0
    # Only the current trial: the next one's images are preloaded but it is not shown yet.
    assert [t for t, (_p, s, _a) in stamps(app).items() if s is not None] == [first]
    # A reload (or coming back later) keeps the first time.
    assert trial_id(trial_form(client)) == first
    assert stamps(app)[first][1] == shown

    answer_trials(client, 1)
    _p, shown_again, answered = stamps(app)[first]
    assert shown_again == shown and answered is not None and shown <= answered
    second = trial_id(trial_form(client))
    assert second != first
    assert stamps(app)[second][1] >= answered


def test_times_follow_one_another_through_the_study(app, client, demo):
    agree(client, "demo")
    answer_trials(client, 12)
    done = sorted(
        (position, shown, answered)
        for position, shown, answered in stamps(app).values()
        if answered is not None
    )
    assert len(done) == 12
    previous = None
    for _position, shown, answered in done:
        assert shown is not None and shown <= answered
        if previous is not None:
            assert previous <= shown
        previous = answered
    with app.app_context():
        rows = list(csv.DictReader(io.StringIO("".join(exports.trials_csv(demo)))))
    assert rows
    for row in rows:
        shown = datetime.fromisoformat(row["shown_at"].replace("Z", "+00:00"))
        answered = datetime.fromisoformat(row["answered_at"].replace("Z", "+00:00"))
        assert row["shown_at"].endswith("Z") and shown <= answered


def test_a_page_that_shows_no_trial_stamps_nothing(app, client, demo):
    agree(client, "demo")
    set_study(app, demo, state="closed")
    page = client.get("/s/demo/trial")
    assert page.status_code == 410
    assert all(shown is None for _p, shown, _a in stamps(app).values())


def test_the_trial_page_is_still_one_statement_on_postgresql(app, client, demo, monkeypatch):
    agree(client, "demo")
    calls = []
    original = hotdb.rows

    def counted(statement, params):
        calls.append(statement)
        return original(statement, params)

    monkeypatch.setattr(hotdb, "rows", counted)
    first = trial_id(trial_form(client))
    # PostgreSQL stamps the trial inside the page's statement; SQLite, which has no writing
    # CTE, stamps it with a second statement only the first time the trial is shown.
    with app.app_context():
        postgres = hotdb.is_postgres()
    assert len(calls) == (1 if postgres else 2)
    calls.clear()
    assert trial_id(trial_form(client)) == first
    assert len(calls) == 1
    assert participants(app)[0].status == "in_progress"
