"""The timing report of a sequential match: checked within plausible bounds, stored by the claim
with the answer, "untimed" (with no figures) when missing or implausible."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from survey.extensions import db
from survey.models import Block, Trial
from survey.participant import answers, hotdb
from survey.participant.simulate import agree
from survey.participant.statements import STORE_ONE_STATEMENT
from tests.helpers import refreeze
from tests.participant.support import first_answers, trial_form, trial_id

SEQUENTIAL = {"presentation": "sequential", "exposure_ms": 500, "fixation_ms": 300, "isi_ms": 0}
SETTINGS = {**SEQUENTIAL, "mask_ms": 0}
REPORT = {
    "timing": "frames",
    "refresh_hz": "59.9412",
    "fixation_ms_achieved": "300.04",
    "exposure_ms_achieved": "500.1",
    "mask_ms_achieved": "",
    "isi_ms_achieved": "0.0",
}
UNTIMED = {**answers.NO_TIMING, "timing": "untimed"}


def test_a_plausible_report_is_stored_rounded_and_phases_left_out_store_nothing():
    # A figure posted for a phase the block leaves out (the mask) is not stored.
    assert answers.clean_timing({**REPORT, "mask_ms_achieved": "40"}, "match", SETTINGS) == {
        "timing": "timed",
        "refresh_hz": 59.94,
        "fixation_ms_achieved": 300.0,
        "exposure_ms_achieved": 500.1,
        "mask_ms_achieved": None,
        "isi_ms_achieved": 0.0,
    }


def test_trials_without_a_timed_phase_store_no_timing():
    assert answers.clean_timing(REPORT, "match", {"presentation": "side_by_side"}) == (
        answers.NO_TIMING
    )
    assert answers.clean_timing(REPORT, "rate", {}) == answers.NO_TIMING
    assert all(value is None for value in answers.NO_TIMING.values())


@pytest.mark.parametrize(
    "change",
    [
        {"timing": ""},  # no script ran
        {"timing": "setTimeout"},
        {"refresh_hz": ""},
        {"refresh_hz": "19.9"},
        {"refresh_hz": "501"},
        {"refresh_hz": "nan"},
        {"exposure_ms_achieved": ""},
        {"exposure_ms_achieved": "-0.1"},
        {"exposure_ms_achieved": "0"},  # a phase asked for and never shown
        {"exposure_ms_achieved": "60000.1"},
        {"exposure_ms_achieved": "inf"},
        {"fixation_ms_achieved": "x"},
        {"isi_ms_achieved": ""},
    ],
)
def test_a_missing_or_implausible_report_is_untimed_with_no_figures(change):
    assert answers.clean_timing({**REPORT, **change}, "match", SETTINGS) == UNTIMED


LEARN = {"exposure_ms": 3000, "label": "", "orienting_question": ""}


def test_a_timed_study_phase_headshot_stores_its_exposure_alone():
    # Only the exposure: a blank posted for the study phase is no phase of it.
    report = {"timing": "frames", "refresh_hz": "60.02", "exposure_ms_achieved": "2999.96"}
    assert answers.clean_timing({**report, "isi_ms_achieved": "5"}, "learn", LEARN) == {
        **answers.NO_TIMING,
        "timing": "timed",
        "refresh_hz": 60.02,
        "exposure_ms_achieved": 3000.0,
    }
    assert answers.clean_timing({}, "learn", LEARN) == UNTIMED  # no script ran
    assert answers.clean_timing({**report, "exposure_ms_achieved": "0"}, "learn", LEARN) == (
        UNTIMED
    )
    # Self-paced: nothing shows for a set time, so nothing is timed.
    assert answers.clean_timing(report, "learn", {**LEARN, "exposure_ms": None}) == (
        answers.NO_TIMING
    )


def test_no_report_at_all_is_untimed():
    assert answers.clean_timing({}, "match", SETTINGS) == UNTIMED


@pytest.fixture
def sequential(app, demo):
    with app.app_context():
        block = db.session.scalar(sa.select(Block).where(Block.task == "match"))
        block.settings = {**block.settings, **SEQUENTIAL}
        db.session.commit()
        refreeze(block.study_id)
    return demo


def stored_timing(app, trial: int) -> dict:
    with app.app_context():
        row = db.session.get(Trial, trial)
        return {name: getattr(row, name) for name in answers.NO_TIMING}


@pytest.mark.parametrize("via", ["ticket", "database"])
def test_the_report_is_stored_with_the_answer(app, client, sequential, via):
    agree(client, "demo")
    form = trial_form(client)
    page = client.get("/s/demo/trial").get_data(as_text=True)
    for name in answers.NO_TIMING:  # the fields the script fills, empty in the page
        assert f'name="{name}" value=""' in page
    hidden = form.hidden if via == "ticket" else {"csrf_token": form.hidden["csrf_token"]}
    data = {**hidden, **first_answers(form), **REPORT}
    assert client.post(form.action, data=data).status_code == 303
    assert stored_timing(app, trial_id(form)) == {
        "timing": "timed",
        "refresh_hz": 59.94,
        "fixation_ms_achieved": 300.0,
        "exposure_ms_achieved": 500.1,
        "mask_ms_achieved": None,
        "isi_ms_achieved": 0.0,
    }


def test_an_implausible_report_still_stores_the_answer_as_untimed(app, client, sequential):
    agree(client, "demo")
    form = trial_form(client)
    data = {**form.hidden, **first_answers(form), **REPORT, "exposure_ms_achieved": "1e9"}
    assert client.post(form.action, data=data).status_code == 303
    assert stored_timing(app, trial_id(form)) == UNTIMED
    assert trial_form(client).action != form.action  # on to the next trial


def test_side_by_side_trials_store_no_timing(app, client, demo):
    agree(client, "demo")
    form = trial_form(client)
    data = {**form.hidden, **first_answers(form), **REPORT}
    assert client.post(form.action, data=data).status_code == 303
    assert stored_timing(app, trial_id(form)) == answers.NO_TIMING


@pytest.mark.postgres
def test_the_answer_with_its_report_is_one_statement_on_postgresql(
    app, client, sequential, monkeypatch
):
    agree(client, "demo")
    form = trial_form(client)
    calls = []
    original = hotdb.rows

    def counted(statement, params):
        calls.append((statement, params))
        return original(statement, params)

    monkeypatch.setattr(hotdb, "rows", counted)
    data = {**form.hidden, **first_answers(form), **REPORT}
    assert client.post(form.action, data=data).status_code == 303
    # The claim, the responses and the timing report go in one statement (docs/hot-path.md).
    assert [statement for statement, _params in calls] == [STORE_ONE_STATEMENT]
    assert calls[0][1]["exposure_ms_achieved"] == 500.1
    assert stored_timing(app, trial_id(form))["timing"] == "timed"
