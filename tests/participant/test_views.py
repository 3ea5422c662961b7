"""The participant pages' one-statement read of study and participant, and how a start stores.

`service.flow` replaces two ORM loads on every page around the trials; these tests hold it to
what those loads returned: the study by its slug, the participant only when it belongs to that
study, found by its opaque id or by its recruitment id (a withdrawn one by the id's digest).
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from survey.extensions import db
from survey.models import Participant, RecruitmentId, Study, Trial
from survey.participant import service, starting
from survey.participant.recruitment import WITHDRAWN_ID_PREFIX, Recruitment
from survey.participant.simulate import agree
from tests.helpers import seed_quick_demo
from tests.participant.support import answer_trials


@pytest.fixture
def demo(app, monkeypatch):
    """The demo study, quickly seeded."""
    return seed_quick_demo(app, monkeypatch)


def other_study(app) -> int:
    """Add a second open study and return its id."""
    with app.app_context():
        study = Study(slug="second", title="Second study", state="open")
        db.session.add(study)
        db.session.commit()
        return study.id


def test_an_unknown_slug_has_no_flow(app, demo):
    with app.app_context():
        assert service.flow("no-such-study") is None
        assert service.flow("no-such-study", "abc") is None


def test_the_study_view_holds_the_studys_columns(app, demo):
    with app.app_context():
        study = db.session.get(Study, demo)
        view, participant = service.flow("demo")
        assert participant is None
        for name in ("id", "slug", "title", "state", "consent_text", "instructions_text",
                     "debrief_text", "completion_code", "completion_url", "target_n",
                     "n_lists", "assign_by", "settings", "design_sha256"):  # fmt: skip
            assert getattr(view, name) == getattr(study, name), name
        assert view.is_open is study.is_open is True


def test_a_participant_is_found_by_its_opaque_id_in_its_own_study_only(app, client, demo):
    assert agree(client, "demo").status_code == 303
    second = other_study(app)
    with app.app_context():
        stored = db.session.scalars(sa.select(Participant)).one()
        study, participant = service.flow("demo", stored.public_id)
        assert study.id == demo
        assert participant.id == stored.id and participant.public_id == stored.public_id
        assert participant.status == "in_progress" and participant.consented_at is not None
        assert participant.is_preview is False and participant.source == "link"
        assert participant.demographics == {} and participant.answered_any is False
        # Another study's link does not know this participant, nor does an unknown id.
        other, nobody = service.flow("second", stored.public_id)
        assert other.id == second and nobody is None
        assert service.flow("demo", "not-an-id")[1] is None


def test_answered_any_turns_true_with_the_first_answer(app, client, demo):
    assert agree(client, "demo").status_code == 303
    with app.app_context():
        public_id = db.session.scalars(sa.select(Participant.public_id)).one()
    answer_trials(client, 1)
    with app.app_context():
        assert service.flow("demo", public_id)[1].answered_any is True


def test_a_recruitment_id_finds_its_participant_and_after_withdrawal_its_digest(app, client, demo):
    query = "?PROLIFIC_PID=P-VIEWS-1&STUDY_ID=s&SESSION_ID=x"
    assert agree(client, "demo", query).status_code == 303
    recruitment = Recruitment("prolific", "P-VIEWS-1")
    other_study(app)
    with app.app_context():
        stored = db.session.scalars(sa.select(Participant)).one()
        _, found = service.flow("demo", recruitment=recruitment)
        assert found.id == stored.id and found.source == "prolific"
        # The same platform id in another study, or another platform's id: nobody.
        assert service.flow("second", recruitment=recruitment)[1] is None
        mturk = Recruitment("mturk", "P-VIEWS-1")
        assert service.flow("demo", recruitment=mturk)[1] is None
        service.withdraw(db.session.get(Participant, stored.id))
        kept = db.session.scalars(sa.select(RecruitmentId.external_id)).one()
        assert kept.startswith(WITHDRAWN_ID_PREFIX)
        _, withdrawn = service.flow("demo", recruitment=recruitment)
        assert withdrawn.id == stored.id and withdrawn.status == "withdrawn"


def test_a_start_stores_the_schedule_as_built_and_reports_itself_started(app, demo):
    with app.app_context():
        study = service.flow("demo")[0]
        start = starting.start_or_resume(study, public_id="viewstart1")
        assert start.started and start.public_id == "viewstart1"
        participant = start.participant
        assert participant.public_id == "viewstart1" and participant.consented_at is not None
        rows = db.session.scalars(
            sa.select(Trial).where(Trial.participant_id == participant.id).order_by(Trial.position)
        ).all()
        assert [t.position for t in rows] == list(range(1, len(rows) + 1))
        assert starting.stored_schedule(participant) == starting.regenerate_schedule(participant)
        # The same token again resumes that participant rather than starting another.
        again = starting.start_or_resume(study, public_id="viewstart1")
        assert not again.started and again.participant_id == participant.id
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Participant)) == 1
