"""Withdrawal: nothing stored keeps the person's data, and it cannot race the last answer."""

from __future__ import annotations

import io
import json
import threading
import time
import zipfile

import pytest
import sqlalchemy as sa

from survey.extensions import db
from survey.findings import service as findings
from survey.models import Participant, Report, Response, Study, Trial
from survey.participant import answers, service, starting
from tests.findings.support import fill, owner_id, publish_findings


def _report_bytes(client, study_id: int, report_id: int) -> dict[str, bytes]:
    """Every download of a report: results.json, each file of tables.zip, the bundle's files."""
    base = f"/r/studies/{study_id}/report/{report_id}"
    found = {
        "results.json": client.get(f"{base}/results.json").data,
        "report.html": client.get(f"{base}/report.html").data,
    }
    for name in ("tables.zip", "reproduction.zip"):
        response = client.get(f"{base}/{name}")
        assert response.status_code == 200, name
        with zipfile.ZipFile(io.BytesIO(response.data)) as archive:
            for member in archive.namelist():
                found[f"{name}/{member}"] = archive.read(member)
    return found


def _stored(app) -> dict[str, bytes]:
    """Every report row as the database keeps it."""
    with app.app_context():
        return {
            f"report {r.id}": json.dumps(r.results).encode()
            for r in db.session.scalars(sa.select(Report))
        }


def _current_report_id(app, client, study_id: int) -> int:
    """Open the report page (which computes the current data's report) and return its id."""
    assert client.get(f"/r/studies/{study_id}/report").status_code == 200
    with app.app_context():
        return findings.report_state(db.session.get(Study, study_id)).current.id


@pytest.fixture
def published22(app, client, demo, analyses, auth):
    """The demo with 22 simulated participants, closed, its report computed and published."""
    ids = fill(app, demo, 22, seed=5, prolific=True)
    auth.sign_in(owner_id(app))
    _current_report_id(app, client, demo)
    assert publish_findings(client, demo).status_code == 302
    return ids


@pytest.mark.slow
@pytest.mark.parametrize("how", ["participant", "researcher"])
def test_withdrawal_removes_the_participant_from_every_stored_artefact(
    app, client, demo, published22, how
):
    gone = published22[3]
    report_id = _current_report_id(app, client, demo)
    before = {
        **_stored(app),
        **_report_bytes(client, demo, report_id),
        "findings.json": client.get("/f/demo/findings.json").data,
    }
    # The scan can find them: their id is in results.json and the tables before.
    assert gone.encode() in before["results.json"] + before["tables.zip/participant_scores.csv"]
    assert gone.encode() in before[f"report {report_id}"]
    old_public = json.loads(before["findings.json"])

    if how == "participant":
        with app.app_context():
            service.withdraw(service.find_participant(demo, gone))
    else:
        response = client.post(
            f"/r/studies/{demo}/participants/{gone}/delete",
            data={"reason": "withdrawal request by e-mail"},
        )
        assert response.status_code == 302

    # Nothing stored keeps them, before anyone opens a page again.
    for name, data in _stored(app).items():
        assert gone.encode() not in data, name
    # The old report's downloads are gone with it.
    assert client.get(f"/r/studies/{demo}/report/{report_id}/results.json").status_code == 404
    # The public page is recomputed from the remaining data and says so.
    page = client.get("/f/demo")
    assert page.status_code == 200
    assert "after a participant withdrew" in page.get_data(as_text=True)
    public = json.loads(client.get("/f/demo/findings.json").data)
    assert public["n_participants"] == old_public["n_participants"] - 1
    new_id = _current_report_id(app, client, demo)
    with app.app_context():
        assert (
            db.session.get(Report, new_id).data_sha256
            != json.loads(before["results.json"])["data_sha256"]
        )
    after = {
        **_stored(app),
        **_report_bytes(client, demo, new_id),
        "findings.json": client.get("/f/demo/findings.json").data,
        "page": page.data,
        "embed": client.get("/f/demo/embed").data,
    }
    for name, data in after.items():
        assert gone.encode() not in data, name
    with app.app_context():
        assert (
            db.session.scalar(sa.select(Report.id).where(Report.published_at.is_not(None)))
            == new_id
        )


@pytest.mark.slow
def test_published_findings_too_few_after_a_withdrawal_say_so_and_show_nothing(
    app, client, demo, analyses, auth
):
    ids = fill(app, demo, 20, seed=11)
    auth.sign_in(owner_id(app))
    _current_report_id(app, client, demo)
    assert publish_findings(client, demo).status_code == 302
    with app.app_context():
        service.withdraw(service.find_participant(demo, ids[0]))
    for url in ("/f/demo", "/f/demo/embed", "/f/demo/findings.json", "/f/demo/charts/trust.png"):
        response = client.get(url)
        assert response.status_code == 503, url
        text = response.get_data(as_text=True)
        assert "withdrew" in text and "recomputed" in text, url
        assert "n_participants" not in text
    page = client.get(f"/r/studies/{demo}/report").get_data(as_text=True)
    assert "withdrew after the findings were published" in page


@pytest.mark.slow
def test_a_report_computed_from_data_read_before_a_withdrawal_is_not_stored(app, demo, analyses):
    ids = fill(app, demo, 6, seed=3)
    with app.app_context():
        study = db.session.get(Study, demo)
        data = findings.current_data(study)
        service.withdraw(service.find_participant(demo, ids[0]))
        report, created = findings._insert_pending(study, data.sha, data.stamp)
        assert created
        # The inputs were read before the withdrawal, the pending row inserted after it (as a
        # report computation that raced the withdrawal would): nothing may be stored.
        assert findings.compute(report.id, data.inputs) is False
        assert db.session.scalars(sa.select(Report)).all() == []
        state = findings.report_state(db.session.get(Study, demo))
        assert state.current.status == "done"
        assert ids[0].encode() not in json.dumps(state.current.results).encode()


def _almost_done(app, study_id: int, n: int) -> list[tuple[str, int]]:
    """Start n participants and answer all but their last trial; return (public id, last trial)."""
    out = []
    with app.app_context():
        study = db.session.get(Study, study_id)
        for _ in range(n):
            participant = starting.start_participant(study, device="desktop")
            public_id, pid = participant.public_id, participant.id
            trials = db.session.scalars(
                sa.select(Trial).where(Trial.participant_id == pid).order_by(Trial.position)
            ).all()
            trial_ids = [t.id for t in trials]
            for trial_id in trial_ids[:-1]:
                target = answers.answer_target("demo", public_id, trial_id)
                measures = [(name, "1") for name in _measures(target)]
                assert answers.store_answer(target, measures, 900.0) == answers.STORED
            out.append((public_id, trial_ids[-1]))
            study = db.session.get(Study, study_id)
    return out


def _measures(target) -> list[str]:
    """The measures of an answer to a trial (the routes check values; the service stores them)."""
    if target.is_attention:
        return ["attention"]
    if target.task == "rate":
        return [scale["key"] for scale in target.settings["scales"]]
    if target.task == "match":
        return ["same", "confidence"]
    if target.task == "detect":
        return ["source", "confidence"]
    return ["choice"]


def test_a_withdrawal_racing_the_last_answer_never_leaves_a_completed_withdrawal(app, demo):
    """Real threads: the last answer and the withdrawal at once, in every order."""
    rounds = _almost_done(app, demo, 8)
    errors: list[BaseException] = []

    def answer(public_id: str, trial_id: int, barrier: threading.Barrier) -> None:
        with app.app_context():
            target = answers.answer_target("demo", public_id, trial_id)
            measures = [(name, "1") for name in _measures(target)]
            barrier.wait()
            try:
                answers.store_answer(target, measures, 900.0)
            except BaseException as exc:  # noqa: BLE001 (reported below)
                errors.append(exc)

    def withdraw(public_id: str, barrier: threading.Barrier, delay: float) -> None:
        with app.app_context():
            # Read before the answer commits, as the withdraw route reads it.
            participant = service.find_participant(demo, public_id)
            barrier.wait()
            time.sleep(delay)
            try:
                service.withdraw(participant)
            except BaseException as exc:  # noqa: BLE001 (reported below)
                errors.append(exc)

    for index, (public_id, trial_id) in enumerate(rounds):
        barrier = threading.Barrier(2)
        delay = (0.0, 0.02, 0.1, 0.3)[index % 4]
        threads = [
            threading.Thread(target=answer, args=(public_id, trial_id, barrier)),
            threading.Thread(target=withdraw, args=(public_id, barrier, delay)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert errors == []
    with app.app_context():
        people = db.session.scalars(
            sa.select(Participant).where(Participant.public_id.in_([p for p, _ in rounds]))
        ).all()
        assert [(p.status, p.completed_at) for p in people] == [("withdrawn", None)] * len(rounds)
        ids = [p.id for p in people]
        assert (
            db.session.scalar(
                sa.select(sa.func.count())
                .select_from(Response)
                .where(Response.participant_id.in_(ids))
            )
            == 0
        )
        assert (
            db.session.scalar(
                sa.select(sa.func.count()).select_from(Trial).where(Trial.participant_id.in_(ids))
            )
            == 0
        )


@pytest.mark.slow
def test_a_report_stored_while_a_withdrawal_commits_waits_for_it(app, demo, monkeypatch, analyses):
    """Real threads: a report of data read before a withdrawal, stored while it commits."""
    ids = fill(app, demo, 6, seed=3)
    read, deleted, analysed = threading.Event(), threading.Event(), threading.Event()
    outcome: list = []
    forget, versions = findings.forget_reports, findings.software_versions

    def forget_then_wait(study_id: int) -> None:
        # The withdrawal's transaction stays open after deleting the reports until the report
        # is about to be stored (on SQLite the report's insert waits for this commit instead).
        forget(study_id)
        deleted.set()
        if analysed.wait(5):
            time.sleep(1.0)

    def versions_then_tell() -> dict:
        # The last step of the analysis before its results are stored.
        try:
            return versions()
        finally:
            analysed.set()

    monkeypatch.setattr(findings, "forget_reports", forget_then_wait)
    monkeypatch.setattr(findings, "software_versions", versions_then_tell)

    def report() -> None:
        with app.app_context():
            study = db.session.get(Study, demo)
            data = findings.current_data(study)
            read.set()
            deleted.wait(30)
            row, _created = findings._insert_pending(study, data.sha, data.stamp)
            outcome.append(findings.compute(row.id, data.inputs))
            db.session.remove()

    def withdraw() -> None:
        with app.app_context():
            read.wait(30)
            service.withdraw(service.find_participant(demo, ids[0]))
            db.session.remove()

    threads = [threading.Thread(target=report), threading.Thread(target=withdraw)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert outcome == [False]
    for name, data in _stored(app).items():
        assert ids[0].encode() not in data, name
