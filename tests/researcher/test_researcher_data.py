"""Participant data requests (look-up by recruitment id, deletion with a reason), the audit log."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from survey.extensions import db
from survey.models import AuditEvent, Participant, RecruitmentId, Response, Study, Trial
from survey.participant.recruitment import Recruitment
from survey.participant.starting import start_participant


@pytest.fixture
def taker(app, team, owner_client):
    """Open the study and start a Prolific participant with two answered trials."""
    owner_client.post(f"/r/studies/{team.study_id}/state", data={"state": "open"})
    with app.app_context():
        study = db.session.get(Study, team.study_id)
        participant = start_participant(
            study, recruitment=Recruitment("prolific", "5f1e2d3c4b5a", {"STUDY_ID": "s1"})
        )
        trials = db.session.scalars(
            sa.select(Trial)
            .where(Trial.participant_id == participant.id)
            .order_by(Trial.position)
            .limit(2)
        ).all()
        for trial in trials:
            db.session.add(
                Response(trial=trial, participant_id=participant.id, measure="same", value="1")
            )
            trial.answered_at = participant.started_at
        participant.demographics = {"age": "30-39"}
        db.session.commit()
        return participant.public_id


def lookup(client, study_id: int, **query):
    """Get the participant data page with a look-up."""
    return client.get(f"/r/studies/{study_id}/participants", query_string=query)


def test_find_a_participant_by_recruitment_id_or_opaque_id(app, team, owner_client, taker):
    by_prolific = lookup(
        owner_client, team.study_id, platform="prolific", external_id="5f1e2d3c4b5a"
    )
    page = by_prolific.get_data(as_text=True)
    assert by_prolific.status_code == 200 and taker in page and "Trials answered</dt><dd>2" in page
    assert lookup(owner_client, team.study_id, public_id=taker).status_code == 200
    missing = lookup(owner_client, team.study_id, platform="mturk", external_id="5f1e2d3c4b5a")
    assert (
        missing.status_code == 404
        and "No participant of this study has that id." in missing.get_data(as_text=True)
    )
    with app.app_context():
        events = db.session.scalars(
            sa.select(AuditEvent)
            .where(AuditEvent.action == "participant.lookup")
            .order_by(AuditEvent.id)
        ).all()
        assert [(e.detail["by"], e.detail["found"]) for e in events] == [
            ("recruitment id", taker),
            ("participant id", taker),
            ("recruitment id", None),
        ]
        assert all("5f1e2d3c4b5a" not in str(e.detail) for e in events)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"platform": "prolific"}, "Give a recruitment id or a participant id."),
        ({"platform": "myspace", "external_id": "x"}, "Not a valid choice."),
        ({"public_id": "x" * 40}, "32 characters"),
    ],
)
def test_lookups_reject_bad_input(app, team, owner_client, query, message):
    response = lookup(owner_client, team.study_id, **query)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)


def test_deleting_a_participant_removes_the_data_and_audits_the_reason(
    app, team, owner_client, taker
):
    response = owner_client.post(
        f"/r/studies/{team.study_id}/participants/{taker}/delete",
        data={"reason": "withdrawal by e-mail, 3 May"},
    )
    assert response.status_code == 302
    with app.app_context():
        participant = db.session.scalar(
            sa.select(Participant).where(Participant.public_id == taker)
        )
        assert participant.status == "withdrawn" and participant.withdrawn_at is not None
        assert participant.demographics == {}
        for model in (Trial, Response):
            assert (
                db.session.scalar(
                    sa.select(sa.func.count())
                    .select_from(model)
                    .where(model.participant_id == participant.id)
                )
                == 0
            )
        kept = db.session.scalar(
            sa.select(RecruitmentId).where(RecruitmentId.participant_id == participant.id)
        )
        assert kept.external_id.startswith("sha256:") and kept.params == {}
        event = db.session.scalar(
            sa.select(AuditEvent).where(AuditEvent.action == "participant.delete")
        )
        assert event.researcher_email == "owner@example.org" and event.at is not None
        assert event.detail["reason"] == "withdrawal by e-mail, 3 May"
        assert (event.detail["participant"], event.detail["answers_deleted"]) == (taker, 2)
    # The withdrawn participant is still found by the recruitment id, shown as deleted.
    page = lookup(
        owner_client, team.study_id, platform="prolific", external_id="5f1e2d3c4b5a"
    ).get_data(as_text=True)
    assert "data were deleted" in page and "Delete this participant" not in page
    audit = owner_client.get(f"/r/studies/{team.study_id}/audit").get_data(as_text=True)
    assert "participant.delete" in audit and "withdrawal by e-mail, 3 May" in audit


@pytest.mark.parametrize(
    ("reason", "message"), [("", "Give the reason"), ("ok", "between 3 and 500 characters")]
)
def test_deletion_needs_a_reason(app, team, owner_client, taker, reason, message):
    response = owner_client.post(
        f"/r/studies/{team.study_id}/participants/{taker}/delete", data={"reason": reason}
    )
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    with app.app_context():
        assert (
            db.session.scalar(sa.select(Participant.status).where(Participant.public_id == taker))
            == "in_progress"
        )
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Response)) == 2


def test_participants_of_other_studies_are_out_of_reach(app, team, owner_client, taker):
    stranger = team.client(app, "stranger")
    with app.app_context():
        other_id = db.session.scalar(sa.select(Study.id).where(Study.slug == "other"))
    # The stranger's own study does not hold this participant.
    assert (
        stranger.post(
            f"/r/studies/{other_id}/participants/{taker}/delete", data={"reason": "nosy"}
        ).status_code
        == 404
    )
    assert lookup(stranger, other_id, public_id=taker).status_code == 404
    assert lookup(team.client(app, "viewer"), team.study_id, public_id=taker).status_code == 403
    viewer_delete = team.client(app, "viewer").post(
        f"/r/studies/{team.study_id}/participants/{taker}/delete", data={"reason": "no right"}
    )
    assert viewer_delete.status_code == 403
    with app.app_context():
        assert (
            db.session.scalar(sa.select(Participant.status).where(Participant.public_id == taker))
            == "in_progress"
        )


def test_the_audit_log_shows_who_did_what(app, team, owner_client):
    owner_client.post(f"/r/studies/{team.study_id}/state", data={"state": "open"})
    team.client(app, "editor").post(f"/r/studies/{team.study_id}/state", data={"state": "closed"})
    owner_page = owner_client.get(f"/r/studies/{team.study_id}/audit").get_data(as_text=True)
    assert owner_page.index("study.closed") < owner_page.index("study.open")  # newest first
    assert "editor@example.org" in owner_page and "owner@example.org" in owner_page
    assert "127.0.0.1" in owner_page
    viewer_page = (
        team.client(app, "viewer").get(f"/r/studies/{team.study_id}/audit").get_data(as_text=True)
    )
    assert (
        "study.closed" in viewer_page and "127.0.0.1" not in viewer_page
    )  # addresses for owners only


def set_public_id(app, public_id: str, new: str) -> None:
    """Give a participant another opaque id (ids are random: one starting with '-' is rare)."""
    with app.app_context():
        participant = db.session.scalar(
            sa.select(Participant).where(Participant.public_id == public_id)
        )
        participant.public_id = new
        db.session.commit()


def test_the_lookup_takes_an_id_as_exported_or_as_the_monitor_shows_it(
    app, team, owner_client, taker
):
    exported_id = "-AbC_123xyz-456789ABCd"
    set_public_id(app, taker, exported_id)
    # The export writes it with the injection guard's apostrophe; the monitor its first 8.
    trials_csv = owner_client.post(f"/r/studies/{team.study_id}/exports/trials.csv")
    assert f"'{exported_id}" in trials_csv.get_data(as_text=True)
    monitor = owner_client.get(f"/r/studies/{team.study_id}/monitor").get_data(as_text=True)
    assert f"<code>{exported_id[:8]}</code>" in monitor
    for typed in (
        exported_id,
        f"'{exported_id}",
        f"  '{exported_id} ",
        f'"\'{exported_id}"',
        exported_id[:8],
        exported_id[:12],
    ):
        response = lookup(owner_client, team.study_id, public_id=typed)
        assert response.status_code == 200, typed
        assert exported_id in response.get_data(as_text=True)
    # Fewer characters than the monitor shows, or characters of no id, find no one.
    for typed in (exported_id[:5], "'zzzzzzzzzz"):
        assert lookup(owner_client, team.study_id, public_id=typed).status_code == 404


def test_a_short_id_that_starts_two_ids_asks_for_more(app, team, owner_client, taker):
    with app.app_context():
        study = db.session.get(Study, team.study_id)
        other = start_participant(study, recruitment=Recruitment("prolific", "aaaa1111", {}))
        db.session.commit()
        other_id = other.public_id
    set_public_id(app, taker, "SAMEstartAAAAAAAAAAAAA")
    set_public_id(app, other_id, "SAMEstartBBBBBBBBBBBBB")
    response = lookup(owner_client, team.study_id, public_id="SAMEstart")
    assert response.status_code == 400
    assert "Several participants&#39; ids start with SAMEstart; give more of the id" in (
        response.get_data(as_text=True)
    )
    assert lookup(owner_client, team.study_id, public_id="SAMEstartB").status_code == 200


def test_deleting_a_participant_needs_the_whole_id(app, team, owner_client, taker):
    response = owner_client.post(
        f"/r/studies/{team.study_id}/participants/{taker[:8]}/delete",
        data={"reason": "withdrawal request"},
    )
    assert response.status_code == 404
