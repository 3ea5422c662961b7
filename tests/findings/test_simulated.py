"""Simulated participants (`flask simulate-participants`) are marked, exported with a column,
badged on the monitor, left out of the report and the public page by default, included only at
the researcher's request, and deleted in bulk by the owner; the report lists who is not
analysed and why."""

from __future__ import annotations

import csv
import io

import pytest
import sqlalchemy as sa

from analysis.vocabulary import TRIAL_DETAIL_COLUMNS
from survey import exports
from survey.extensions import db
from survey.findings import service
from survey.models import AuditEvent, Participant, Report, Response, Study, Trial, utcnow
from survey.participant.simulate import agree
from tests.findings.support import (
    Effects,
    fill,
    member,
    owner_id,
    page_text,
    publish_findings,
    set_state,
)
from tests.security.helpers import csrf_token

REAL, SIMULATED = 20, 5


def mark_simulated(app, public_ids: list[str]) -> None:
    """Mark participants as the simulator does (its marking is tested on its own below)."""
    with app.app_context():
        db.session.execute(
            sa.update(Participant)
            .where(Participant.public_id.in_(public_ids))
            .values(is_simulated=True)
        )
        db.session.commit()


def real_and_simulated(
    app, study_id: int, real: int = REAL, simulated: int = SIMULATED, close: bool = True
) -> tuple[list[str], list[str]]:
    """Real participants from Prolific and simulated ones from the plain link."""
    people = fill(app, study_id, real, seed=3, close=False, prolific=True)
    robots = fill(app, study_id, simulated, seed=4, close=False)
    mark_simulated(app, robots)
    if close:
        set_state(app, study_id, "closed")
    return people, robots


def csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def n_rows(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


# --- marking -----------------------------------------------------------------------------------


def test_the_simulator_marks_its_participants(app, runner, demo):
    result = runner.invoke(
        args=["simulate-participants", "--study", "demo", "-n", "4", "--seed", "3"]
    )
    assert result.exit_code == 0, result.output
    with app.app_context():
        marks = db.session.scalars(sa.select(Participant.is_simulated)).all()
    assert len(marks) == 4 and all(marks)


def test_a_request_from_outside_cannot_mark_itself_simulated(app, demo):
    """No header, query parameter or form field reaches the environ key the simulator sets."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = "198.51.100.7"
    forged = {"likeness.simulated": "1", "Likeness-Simulated": "1", "X-Simulated": "true"}
    page = client.get("/s/demo?simulated=1", headers=forged)
    assert page.status_code == 200
    response = agree(_Headed(client, forged), "demo", "?simulated=1&likeness.simulated=1")
    assert response.status_code == 303
    with app.app_context():
        people = db.session.scalars(sa.select(Participant)).all()
    assert len(people) == 1 and people[0].is_simulated is False


class _Headed:
    """A test client that sends the same headers with every request."""

    def __init__(self, client, headers: dict) -> None:
        self.client, self.headers = client, headers

    def get(self, url):
        return self.client.get(url, headers=self.headers)

    def post(self, url, data):
        return self.client.post(url, data={**data, "likeness.simulated": "1"}, headers=self.headers)


# --- exports -----------------------------------------------------------------------------------


def test_every_export_says_who_is_simulated(app, demo):
    people, robots = real_and_simulated(app, demo, real=3, simulated=2, close=False)
    with app.app_context():
        trials = csv_rows("".join(exports.trials_csv(demo)))
        participants = csv_rows("".join(exports.participants_csv(demo)))
        real_only = csv_rows("".join(exports.participants_csv(demo, include_simulated=False)))
        codebook = exports.codebook(demo)
        frame = exports.trials_dataframe(demo, include_simulated=False)
    # `simulated` follows the contract's columns; only `studied` (memory), the per-trial details and
    # the timing columns come after it.
    after = exports.TRIAL_COLUMNS[exports.TRIAL_COLUMNS.index("simulated") + 1 :]
    assert exports.TRIAL_COLUMNS[exports.TRIAL_COLUMNS.index("simulated") - 1] == "rt_flag"
    assert after == ("studied", *TRIAL_DETAIL_COLUMNS, *exports.TIMING_COLUMNS)
    # An id that starts with "-" is written with the CSV-injection guard's leading quote.
    people_cells = {exports.safe_cell(p) for p in people}
    robot_cells = {exports.safe_cell(p) for p in robots}
    assert {r["participant"] for r in trials if r["simulated"] == "1"} == robot_cells
    assert {r["participant"] for r in trials if r["simulated"] == "0"} == people_cells
    assert {r["participant"]: r["simulated"] for r in participants} == {
        **{p: "0" for p in people_cells},
        **{p: "1" for p in robot_cells},
    }
    assert {r["participant"] for r in real_only} == people_cells
    assert set(frame["participant"]) == set(people) and set(frame["simulated"]) == {0}
    described = {(c["file"], c["name"]): c for c in codebook}
    for file in ("trials.csv", "participants.csv"):
        assert "flask simulate-participants" in described[(file, "simulated")]["description"]


# --- monitor -----------------------------------------------------------------------------------


def test_the_monitor_counts_real_participants_and_badges_simulated_ones(app, client, demo, auth):
    real_and_simulated(app, demo, real=2, simulated=3, close=False)
    auth.sign_in(owner_id(app))
    figures = client.get(f"/r/studies/{demo}/monitor.json").get_json()
    assert figures["participants"]["total"]["started"] == 2
    assert figures["simulated"]["started"] == 3 and figures["simulated"]["completed"] == 3
    page = client.get(f"/r/studies/{demo}/monitor").get_data(as_text=True)
    table = page.split('id="table-title"', 1)[1]
    assert table.count('<span class="badge simulated">simulated</span>') == 3
    assert "Delete simulated participants" in page
    preview = client.get(f"/r/studies/{demo}/monitor?preview=1").get_data(as_text=True)
    assert '<span class="badge simulated">' not in preview.split('id="table-title"', 1)[1]


# --- report ------------------------------------------------------------------------------------


@pytest.fixture
def mixed(app, client, demo, analyses, auth):
    """20 real participants from Prolific and 5 simulated ones from the link, closed; the
    owner signed in; the analyses counted."""
    people, robots = real_and_simulated(app, demo)
    auth.sign_in(owner_id(app))
    return analyses, people, robots


def reports(app) -> list[Report]:
    with app.app_context():
        rows = db.session.scalars(sa.select(Report).order_by(Report.id)).all()
        db.session.expunge_all()
        return rows


def test_the_report_leaves_simulated_participants_out_by_default(app, client, demo, mixed):
    _calls, people, robots = mixed
    text = page_text(client.get(f"/r/studies/{demo}/report"))
    [row] = reports(app)
    assert row.includes_simulated is False
    results = service.results_json(row)
    sample = service.report_data(row)["sample"]
    assert results["simulated_participants"] == {"excluded": SIMULATED, "included": 0}
    assert sample["recruited"] == REAL and sample["sources"] == {"prolific": REAL}
    assert results["n_participants"] <= REAL
    analysed = {e["participant"] for e in results["exclusions"]} | set(
        service.tables(row)["exclusions"]["participant"]
    )
    assert analysed == set(people) and not analysed & set(robots)
    with app.app_context():
        methods = service.methods_text(db.session.get(Study, demo), db.session.get(Report, row.id))
    assert methods.startswith(f"{REAL} participants took part through Prolific.")
    assert "direct link" not in methods
    assert (
        f"{SIMULATED} simulated participants (test runs by the study platform, not people) "
        "were left out of these counts and of the analysis."
    ) in methods
    assert (
        f"{SIMULATED} simulated participants are left out of this report and of the public page"
    ) in text
    assert "Include simulated participants" in text


@pytest.mark.once
def test_the_switch_includes_them_says_so_and_is_cached_apart(app, client, demo, mixed):
    calls, _people, robots = mixed
    client.get(f"/r/studies/{demo}/report")
    text = page_text(client.get(f"/r/studies/{demo}/report?simulated=1"))
    default, included = reports(app)
    assert (default.includes_simulated, included.includes_simulated) == (False, True)
    assert default.data_sha256 != included.data_sha256
    assert f"this report analyses {SIMULATED} simulated participants" in text
    assert "never published" in text
    results = service.results_json(included)
    assert results["simulated_participants"] == {"excluded": 0, "included": SIMULATED}
    assert set(robots) <= set(service.tables(included)["exclusions"]["participant"])
    with app.app_context():
        methods = service.methods_text(
            db.session.get(Study, demo), db.session.get(Report, included.id)
        )
    assert methods.startswith(
        f"{REAL + SIMULATED} participants took part through a direct link "
        f"({SIMULATED}) and Prolific ({REAL}), {SIMULATED} of them simulated"
    )
    assert "were left out of these counts" not in methods
    # Each view serves its own report from the cache: no third analysis.
    assert len(calls) == 2
    assert "are left out of this report" in page_text(client.get(f"/r/studies/{demo}/report"))
    included_page = page_text(client.get(f"/r/studies/{demo}/report?simulated=1"))
    assert "Simulated participants included:" in included_page
    assert len(calls) == 2 and len(reports(app)) == 2
    assert client.get(f"/r/studies/{demo}/report?simulated=yes").status_code == 400


@pytest.mark.once
def test_publishing_and_the_public_page_never_include_simulated_participants(
    app, client, demo, mixed
):
    # While the report with simulated participants is the only one computed, there is nothing
    # to confirm, and naming that report in the confirmation is refused.
    client.get(f"/r/studies/{demo}/report?simulated=1")
    (included,) = reports(app)
    assert included.includes_simulated is True
    confirm = client.get(f"/r/studies/{demo}/report/publish").get_data(as_text=True)
    assert 'name="report_id"' not in confirm
    refused = client.post(
        f"/r/studies/{demo}/report/publish", data={"report_id": included.id}, follow_redirects=True
    )
    assert "The findings are published" not in page_text(refused)
    assert not [r for r in reports(app) if r.published_at is not None]
    # The report of the real participants is the one published.
    client.get(f"/r/studies/{demo}/report")
    assert publish_findings(client, demo).status_code == 302
    published = [r for r in reports(app) if r.published_at is not None]
    assert len(published) == 1 and published[0].includes_simulated is False
    public = client.get("/f/demo/findings.json").get_json()
    assert public["simulated_participants"] == {"excluded": SIMULATED, "included": 0}
    assert public["n_participants"] == service.results_json(published[0])["n_participants"]
    page = page_text(client.get("/f/demo"))
    assert f"{REAL} participants took part through Prolific." in page
    # Even a report row marked published by hand is not shown if it includes them.
    with app.app_context():
        db.session.execute(
            sa.update(Report)
            .where(Report.includes_simulated.is_(True))
            .values(published_at=utcnow())
        )
        db.session.execute(
            sa.update(Report).where(Report.includes_simulated.is_(False)).values(published_at=None)
        )
        db.session.commit()
        study = db.session.get(Study, demo)
        shown = service.published_report(study)
        assert shown is None or shown.includes_simulated is False


@pytest.mark.once
def test_a_report_with_simulated_participants_cannot_be_published(
    app, client, demo, mixed, monkeypatch
):
    """publish() takes the default report; were it ever handed the other, it refuses."""
    client.get(f"/r/studies/{demo}/report?simulated=1")
    with app.app_context():
        included = db.session.scalar(sa.select(Report).where(Report.includes_simulated.is_(True)))
        study = db.session.get(Study, demo)
        state = service.ReportState(included, included, None, 1)
        monkeypatch.setattr(service, "report_state", lambda *_a, **_k: state)
        with pytest.raises(service.PublishError, match="simulated"):
            service.publish(study, None)


# --- bulk deletion -----------------------------------------------------------------------------


def answers_of(app, public_ids) -> int:
    with app.app_context():
        return db.session.scalar(
            sa.select(sa.func.count(Response.id))
            .join(Participant)
            .where(Participant.public_id.in_(public_ids))
        )


def test_the_owner_deletes_simulated_participants_after_confirming(app, client, demo, mixed):
    _calls, people, robots = mixed
    client.get(f"/r/studies/{demo}/report")
    assert publish_findings(client, demo).status_code == 302
    client.get(f"/r/studies/{demo}/report?simulated=1")
    [published] = [r for r in reports(app) if r.published_at is not None]
    public_before = client.get("/f/demo/findings.json").get_json()
    real_answers = answers_of(app, people)
    url = f"/r/studies/{demo}/simulated/delete"
    confirm = page_text(client.get(url))
    assert f"This study has {SIMULATED} simulated participants" in confirm
    assert "they never included simulated participants" in confirm
    # Unconfirmed, or confirmed for another number: nothing happens.
    assert client.post(url, data={"count": str(SIMULATED)}).status_code == 400
    refused = client.post(url, data={"count": "3", "confirm": "y"})
    assert refused.status_code == 409
    assert f"has {SIMULATED} simulated participants now, not the 3" in page_text(refused)
    assert n_rows(app, Participant, Participant.is_simulated.is_(True)) == SIMULATED
    response = client.post(url, data={"count": str(SIMULATED), "confirm": "y"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/monitor")
    assert n_rows(app, Participant, Participant.is_simulated.is_(True)) == 0
    assert n_rows(app, Participant) == REAL and answers_of(app, people) == real_answers
    assert answers_of(app, robots) == 0
    left = reports(app)
    assert [r.id for r in left] == [published.id] and not left[0].includes_simulated
    assert client.get("/f/demo/findings.json").get_json() == public_before
    with app.app_context():
        event = db.session.scalar(
            sa.select(AuditEvent).where(AuditEvent.action == "participants.delete_simulated")
        )
        assert event.detail["participants"] == SIMULATED and event.detail["reports_deleted"] == 1
        assert event.detail["answers_deleted"] > 0
    # Nothing left to delete: refused with a message.
    again = client.post(url, data={"count": "1", "confirm": "y"})
    assert again.status_code == 409 and "no simulated participants" in page_text(again)
    # The report of the real participants no longer mentions simulated ones.
    text = page_text(client.get(f"/r/studies/{demo}/report"))
    assert "left out of this report" not in text


def test_only_the_owner_deletes_and_only_with_a_token(
    app, client, demo, make_researcher, mixed, auth
):
    url = f"/r/studies/{demo}/simulated/delete"
    for role in ("editor", "viewer"):
        other = app.test_client()
        auth.sign_in(member(app, demo, role, f"{role}@example.org", make_researcher), client=other)
        assert other.get(url).status_code == 403
        assert other.post(url, data={"count": str(SIMULATED), "confirm": "y"}).status_code == 403
    app.config["WTF_CSRF_ENABLED"] = True
    assert client.post(url, data={"count": str(SIMULATED), "confirm": "y"}).status_code == 400
    assert (
        client.post(
            url, data={"count": str(SIMULATED), "confirm": "y", "csrf_token": "forged"}
        ).status_code
        == 400
    )
    assert n_rows(app, Participant, Participant.is_simulated.is_(True)) == SIMULATED
    token = csrf_token(client, url)
    response = client.post(url, data={"count": str(SIMULATED), "confirm": "y", "csrf_token": token})
    assert response.status_code == 302
    assert n_rows(app, Participant, Participant.is_simulated.is_(True)) == 0


def test_an_archived_study_keeps_its_simulated_participants(app, client, demo, mixed):
    set_state(app, demo, "archived")
    response = client.post(
        f"/r/studies/{demo}/simulated/delete", data={"count": str(SIMULATED), "confirm": "y"}
    )
    assert response.status_code == 409 and "archived" in page_text(response)
    assert n_rows(app, Participant, Participant.is_simulated.is_(True)) == SIMULATED


def test_a_report_with_simulated_participants_read_before_their_deletion_is_not_stored(
    app, demo, mixed
):
    with app.app_context():
        study = db.session.get(Study, demo)
        inputs = service.load_inputs(study, include_simulated=True)
        assert inputs.simulated == SIMULATED
        report = Report(
            study_id=demo,
            data_sha256=inputs.data_sha256,
            analysis_version=service.analysis.__version__,
            status="pending",
            includes_simulated=True,
            results={},
        )
        db.session.add(report)
        db.session.commit()
        # The simulated participants are deleted while the analysis runs.
        db.session.execute(sa.delete(Participant).where(Participant.is_simulated.is_(True)))
        db.session.commit()
        assert service.compute(report.id, inputs) is False
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Report)) == 0


# --- who is not analysed, and why --------------------------------------------------------------


@pytest.mark.once
def test_the_report_lists_excluded_expired_unfinished_and_withdrawn_participants(
    app, client, demo, analyses, auth
):
    careless = fill(app, demo, 4, seed=8, close=False, effects=Effects(fail_attention=1.0))
    fill(app, demo, 6, seed=9, close=False)
    stopped = fill(app, demo, 3, seed=10, close=False, effects=Effects(stop_early=1.0))
    expired, unfinished, withdrawn = stopped
    with app.app_context():
        db.session.execute(
            sa.update(Participant)
            .where(Participant.public_id == expired)
            .values(status="expired", expired_at=utcnow())
        )
        db.session.execute(
            sa.update(Participant)
            .where(Participant.public_id == withdrawn)
            .values(status="withdrawn", withdrawn_at=utcnow())
        )
        db.session.commit()
        trials = (
            sa.select(sa.func.count(Trial.id))
            .join(Participant)
            .where(Participant.public_id == expired, Trial.is_practice.is_(False))
        )
        scheduled = db.session.scalar(trials)
        answered = db.session.scalar(trials.where(Trial.answered_at.is_not(None)))
    assert 0 < answered < scheduled
    auth.sign_in(owner_id(app))
    page = client.get(f"/r/studies/{demo}/report").get_data(as_text=True)
    listed = page_text_of_section(page)
    assert "Excluded by the analysis" in listed
    for public_id in careless:
        assert f"{public_id} failed an attention check" in listed
    assert f"{expired} did not finish" in listed  # the incomplete rule
    assert "Expired: stopped without finishing, answers kept (1)" in listed
    assert "Not finished: still in progress or abandoned (1)" in listed
    expired_row = listed.split("Expired: stopped", 1)[1].split("Not finished", 1)[0]
    assert expired in expired_row and f"{answered} of {scheduled} trials" in expired_row
    unfinished_row = listed.split("Not finished:", 1)[1].split("Withdrawn", 1)[0]
    assert unfinished in unfinished_row and expired not in unfinished_row
    assert "1 participant withdrew" in listed and withdrawn not in listed
    assert "1 withdrawn" in listed


def page_text_of_section(page: str) -> str:
    """The visible text of the report's list of participants who are not analysed."""
    section = page.split('id="not-analysed"', 1)[1].split("</details>", 1)[0]
    return page_text(_Page(section))


class _Page:
    def __init__(self, text: str) -> None:
        self.text = text

    def get_data(self, as_text: bool = True) -> str:
        return self.text


def test_without_simulated_participants_the_two_reports_are_still_kept_apart(
    app, client, demo, analyses, auth
):
    fill(app, demo, 3, seed=12)
    auth.sign_in(owner_id(app))
    client.get(f"/r/studies/{demo}/report")
    text = page_text(client.get(f"/r/studies/{demo}/report?simulated=1"))
    default, included = reports(app)
    assert (default.includes_simulated, included.includes_simulated) == (False, True)
    assert default.data_sha256 != included.data_sha256
    assert "this report analyses 0 simulated participants" in text
    assert service.results_json(included)["simulated_participants"] == {
        "excluded": 0,
        "included": 0,
    }
    # The real participants' report keeps the hash it had before simulated ones existed.
    with app.app_context():
        inputs = service.load_inputs(db.session.get(Study, demo))
        assert default.data_sha256 == service.data_hash(
            inputs.trials, inputs.participants, inputs.plan, identities=inputs.identities
        )


def test_a_study_of_simulated_participants_only_has_no_report_until_they_are_included(
    app, client, demo, analyses, auth
):
    robots = fill(app, demo, 3, seed=13, close=False)
    mark_simulated(app, robots)
    auth.sign_in(owner_id(app))
    text = page_text(client.get(f"/r/studies/{demo}/report"))
    assert "No data yet" in text and "simulated participants only when included" in text
    assert "3 simulated participants are left out of this report" in text
    assert analyses == [] and reports(app) == []
    text = page_text(client.get(f"/r/studies/{demo}/report?simulated=1"))
    assert "this report analyses 3 simulated participants" in text and "Findings" in text
    assert [r.includes_simulated for r in reports(app)] == [True]


def test_simulated_participants_take_no_real_participants_slot(app, demo):
    """The target N and the list balance count real participants; simulated runs are balanced
    among themselves."""
    from survey.participant import starting
    from tests.helpers import set_study

    set_study(app, demo, target_n=2)
    with app.app_context():
        study = db.session.get(Study, demo)
        # The demo has four lists (its memory test rotates each identity over four).
        robots = [starting.start_participant(study, simulated=True) for _ in range(5)]
        lists = [p.list_index for p in robots]
        assert lists == [0, 1, 2, 3, 0] and all(p.is_simulated for p in robots)
        assert not starting.is_full(study)
        people = [starting.start_participant(study) for _ in range(2)]
        assert [p.list_index for p in people] == [0, 1]
        assert not any(p.is_simulated for p in people)
        assert starting.is_full(study)
        with pytest.raises(starting.StudyUnavailable):
            starting.start_participant(study)


def test_the_study_pages_count_real_participants(app, client, demo, auth):
    real_and_simulated(app, demo, real=2, simulated=3, close=False)
    auth.sign_in(owner_id(app))
    overview = page_text(client.get(f"/r/studies/{demo}"))
    assert "Started 2 " in overview and "Simulated participants (counted apart) 3" in overview
    exports_page = page_text(client.get(f"/r/studies/{demo}/exports"))
    assert "5 participants are exported" in exports_page
    assert "3 of them are simulated" in exports_page
