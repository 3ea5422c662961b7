"""Races around the design freeze and the last owner, with real threads on the test database.

Each test lets two requests overlap at the moment that matters: a pause is put into the
request's own code (after the slow reading of an upload, or once the owners are counted),
never in place of the database.
"""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from survey.extensions import db
from survey.models import Identity, Image, Participant, Study, StudyMember, StudyQuestion
from survey.participant.simulate import agree
from survey.studies import design_sha256
from tests.helpers import full_set, media_files, sign_in, upload_zip
from tests.researcher.helpers import add_member, quick_researcher

pytestmark = pytest.mark.slow

NEW_CODES = tuple(f"P{n:03d}" for n in range(9, 15))  # six identities the team's 8 lack
WAIT = 30  # seconds a thread waits for the other before the test gives up


def run(target, *args) -> tuple[threading.Thread, dict]:
    """Start `target(*args)` in a thread; its return value (or error) lands in the dict."""
    out: dict = {}

    def body() -> None:
        try:
            out["value"] = target(*args)
        except BaseException as exc:  # surfaced by the test's assertions
            out["error"] = exc

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, out


def design_state(app, study_id: int) -> tuple[str, int, str | None, str]:
    """Return the study's state, identity count, stored design hash and the hash it has now."""
    with app.app_context():
        db.session.expire_all()
        study = db.session.get(Study, study_id)
        n = db.session.scalar(sa.select(sa.func.count()).where(Identity.study_id == study_id))
        return study.state, n, study.design_sha256, design_sha256(study)


def client_as(app, researcher_id: int):
    """Return a test client signed in as the researcher."""
    client = app.test_client()
    sign_in(client, app, researcher_id)
    return client


def open_study(client, study_id: int):
    """POST the opening of the study."""
    return client.post(f"/r/studies/{study_id}/state", data={"state": "open"})


def test_an_upload_read_on_the_draft_is_refused_when_it_commits_after_the_opening(
    app, team, monkeypatch
):
    from survey.researcher import stimuli_service

    read, opened = threading.Event(), threading.Event()
    check = stimuli_service.check_against_study

    def slow_check(study, stimulus_set):
        # The upload has been read and checked on the draft; it commits only after the opening.
        problems = check(study, stimulus_set)
        read.set()
        opened.wait(WAIT)
        return problems

    monkeypatch.setattr(stimuli_service, "check_against_study", slow_check)
    files = media_files(app)
    editor, owner = team.client(app, "editor"), team.client(app, "owner")
    thread, upload = run(upload_zip, editor, team.study_id, full_set(NEW_CODES, start=100))
    assert read.wait(WAIT)
    assert open_study(owner, team.study_id).status_code == 302
    opened.set()
    thread.join(WAIT)

    response = upload["value"]
    assert response.status_code == 409
    assert "frozen" in response.get_data(as_text=True)
    state, identities, stored, now = design_state(app, team.study_id)
    assert (state, identities) == ("open", 8)
    assert stored == now
    assert media_files(app) == files  # nothing of the refused upload is left in storage


def test_an_opening_waits_for_an_upload_that_is_committing(app, team, monkeypatch):
    from survey import media

    writing, release = threading.Event(), threading.Event()
    store = media.store_image

    def slow_store(*args, **kwargs):
        # The upload is writing its rows and files: the opening must wait for it, then see it.
        writing.set()
        release.wait(WAIT)
        return store(*args, **kwargs)

    monkeypatch.setattr(media, "store_image", slow_store)
    editor, owner = team.client(app, "editor"), team.client(app, "owner")
    upload_thread, upload = run(upload_zip, editor, team.study_id, full_set(NEW_CODES, start=100))
    assert writing.wait(WAIT)
    open_thread, opening = run(open_study, owner, team.study_id)
    time.sleep(1.0)
    waited = open_thread.is_alive()
    release.set()
    upload_thread.join(WAIT)
    open_thread.join(WAIT)

    assert upload["value"].status_code == 302
    assert opening["value"].status_code == 302
    state, identities, stored, now = design_state(app, team.study_id)
    assert (state, identities) == ("open", 14)
    assert stored == now  # the frozen hash covers the upload
    assert waited


@pytest.mark.parametrize(
    "first, second", [("role", "role"), ("remove", "role"), ("remove", "remove")]
)
def test_two_owners_removing_each_other_at_once_leave_an_owner(
    app, team, monkeypatch, first, second
):
    from survey.researcher import study_routes

    other = quick_researcher(app, "second-owner@example.org")
    add_member(app, team.study_id, other, "owner")
    with app.app_context():
        ids = dict(
            db.session.execute(
                sa.select(StudyMember.researcher_id, StudyMember.id).where(
                    StudyMember.study_id == team.study_id
                )
            ).all()
        )
    both_counted = threading.Barrier(2)
    count = study_routes._owner_count

    def counted(study):
        # Both requests have counted two owners before either writes, when they can.
        n = count(study)
        try:
            both_counted.wait(2)
        except threading.BrokenBarrierError:
            pass  # the other request is waiting for the lock: it counts after this one
        return n

    monkeypatch.setattr(study_routes, "_owner_count", counted)

    def act(client, action: str, member_id: int):
        url = f"/r/studies/{team.study_id}/members/{member_id}/{action}"
        return client.post(url, data={"role": "editor"} if action == "role" else {})

    a = run(act, team.client(app, "owner"), first, ids[other])
    b = run(act, client_as(app, other), second, ids[team.owner])
    statuses = []
    for thread, out in (a, b):
        thread.join(WAIT)
        statuses.append(out["value"].status_code)

    with app.app_context():
        owners = db.session.scalar(
            sa.select(sa.func.count()).where(
                StudyMember.study_id == team.study_id, StudyMember.role == "owner"
            )
        )
    assert owners == 1
    assert sorted(statuses)[0] == 302 and sorted(statuses)[1] in (403, 404, 409)


def test_a_start_is_refused_when_the_design_no_longer_matches_its_frozen_hash(app, team):
    owner = team.client(app, "owner")
    assert open_study(owner, team.study_id).status_code == 302
    with app.app_context():
        # A change that bypassed the freeze (a direct database edit): an image row deleted.
        image = db.session.scalars(sa.select(Image).where(Image.study_id == team.study_id)).first()
        db.session.delete(image)
        db.session.commit()

    response = agree(app.test_client(), "trust")
    assert response.status_code == 409
    assert "materials changed after it opened" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Participant)) == 0


def test_an_opening_waits_for_a_question_being_added_then_freezes_the_questions(
    app, team, monkeypatch
):
    from survey.researcher import question_routes

    checking, release = threading.Event(), threading.Event()
    clean = question_routes.clean_spec

    def slow_clean(kind, form):
        # The question is being checked under the study's lock: the opening must wait for it.
        checking.set()
        release.wait(WAIT)
        return clean(kind, form)

    monkeypatch.setattr(question_routes, "clean_spec", slow_clean)
    editor, owner = team.client(app, "editor"), team.client(app, "owner")
    data = {"code": "seen", "text": "Seen before?", "kind": "choice", "options": "Yes\nNo"}
    add_thread, added = run(lambda: editor.post(f"/r/studies/{team.study_id}/questions", data=data))
    assert checking.wait(WAIT)
    open_thread, opening = run(open_study, owner, team.study_id)
    time.sleep(1.0)
    waited = open_thread.is_alive()
    release.set()
    add_thread.join(WAIT)
    open_thread.join(WAIT)

    assert added["value"].status_code == 303 and opening["value"].status_code == 302
    assert waited
    # Once open, the questions are frozen: the next change is refused.
    monkeypatch.setattr(question_routes, "clean_spec", clean)
    late = editor.post(f"/r/studies/{team.study_id}/questions", data={**data, "code": "late"})
    assert late.status_code == 409
    with app.app_context():
        codes = db.session.scalars(
            sa.select(StudyQuestion.code).where(StudyQuestion.study_id == team.study_id)
        ).all()
    assert codes == ["seen"]
