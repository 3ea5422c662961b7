"""Drawn charts are stored once per report: never redrawn, never another report's, never kept
after their report (a withdrawal) or their page (unpublishing)."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa

import analysis.figures
from survey.extensions import db
from survey.findings import routes
from survey.findings import service as findings
from survey.models import Report, ReportChart, Study
from survey.participant import service as participants
from tests.findings.support import fill, owner_id, publish_findings


@pytest.fixture
def draws(monkeypatch) -> list:
    """Every public chart card matplotlib draws (claim_card's calls)."""
    calls = []
    real = analysis.figures.claim_card

    def counted(*args, **kwargs):
        calls.append(args[1]["outcome"])
        return real(*args, **kwargs)

    monkeypatch.setattr(analysis.figures, "claim_card", counted)
    return calls


@pytest.fixture
def study_published(app, client, demo, analyses, draws, auth):
    """The demo with 21 simulated participants, closed and published; returns their ids."""
    ids = fill(app, demo, 21, seed=7)
    auth.sign_in(owner_id(app))
    assert client.get(f"/r/studies/{demo}/report").status_code == 200
    assert publish_findings(client, demo).status_code == 302
    return ids


def _rows(app, prefix: str = "card:") -> dict[tuple, ReportChart]:
    with app.app_context():
        rows = db.session.scalars(
            sa.select(ReportChart).where(ReportChart.name.like(prefix + "%"))
        ).all()
        return {(r.report_id, r.name, r.fmt): (r.sha256, bytes(r.body)) for r in rows}


def _outcomes(app) -> tuple[int, list[str]]:
    with app.app_context():
        report = db.session.scalar(sa.select(Report).where(Report.published_at.is_not(None)))
        return report.id, [f["outcome"] for f in findings.results_json(report)["findings"]]


def test_public_charts_are_drawn_at_publishing_and_served_from_the_store(
    app, client, demo, study_published, draws
):
    report_id, outcomes = _outcomes(app)
    assert len(outcomes) >= 3
    # Publishing drew every chart once, in both formats.
    assert sorted(draws) == sorted(outcomes * 2)
    stored = _rows(app)
    assert set(stored) == {
        (report_id, f"card:{o}", fmt) for o in outcomes for fmt in ("png", "svg")
    }
    drawn = len(draws)
    for outcome in outcomes:
        for fmt in ("png", "svg"):
            sha, body = stored[(report_id, f"card:{outcome}", fmt)]
            for _ in range(2):
                response = client.get(f"/f/demo/charts/{outcome}.{fmt}")
                assert response.status_code == 200
                assert response.data == body
                assert hashlib.sha256(response.data).hexdigest() == sha
                assert response.headers["ETag"] == f'"{sha[:32]}"'
                assert response.headers["Cache-Control"] == "public, no-cache"
            again = client.get(
                f"/f/demo/charts/{outcome}.{fmt}",
                headers={"If-None-Match": response.headers["ETag"]},
            )
            assert again.status_code == 304 and again.headers["ETag"] == f'"{sha[:32]}"'
    assert len(draws) == drawn  # nothing was drawn again
    assert client.get("/f/demo/charts/no_such_outcome.png").status_code == 404
    assert len(draws) == drawn


def test_a_missing_chart_is_drawn_once_on_first_request(app, client, demo, study_published, draws):
    _report_id, outcomes = _outcomes(app)
    with app.app_context():
        db.session.execute(sa.delete(ReportChart))
        db.session.commit()
    del draws[:]
    first = client.get(f"/f/demo/charts/{outcomes[0]}.png")
    second = client.get(f"/f/demo/charts/{outcomes[0]}.png")
    assert first.status_code == second.status_code == 200
    assert draws == [outcomes[0]]
    assert first.data == second.data == next(iter(_rows(app).values()))[1]


def test_a_renamed_study_gets_its_charts_redrawn(app, client, demo, study_published, draws):
    """The title is drawn on the card: a stored card of the old title is not served."""
    _report_id, outcomes = _outcomes(app)
    old = client.get(f"/f/demo/charts/{outcomes[0]}.svg")
    with app.app_context():
        db.session.get(Study, demo).title = "A renamed study"
        db.session.commit()
    del draws[:]
    new = client.get(
        f"/f/demo/charts/{outcomes[0]}.svg", headers={"If-None-Match": old.headers["ETag"]}
    )
    assert new.status_code == 200 and b"A renamed study" in new.data
    assert new.headers["ETag"] != old.headers["ETag"] and draws == [outcomes[0]]
    assert len([k for k in _rows(app) if k[1] == f"card:{outcomes[0]}" and k[2] == "svg"]) == 1


def test_a_withdrawal_deletes_the_stored_charts_with_the_report(
    app, client, demo, study_published, draws
):
    report_id, outcomes = _outcomes(app)
    old = client.get(f"/f/demo/charts/{outcomes[0]}.png").data
    assert _rows(app)
    with app.app_context():
        participants.withdraw(participants.find_participant(demo, study_published[0]))
        # Deleted by the database with the report (foreign keys are enforced on SQLite too).
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ReportChart)) == 0
        assert db.session.get(Report, report_id) is None
    del draws[:]
    # The republished report's chart is drawn from its own results, then stored under it.
    response = client.get(f"/f/demo/charts/{outcomes[0]}.png")
    assert response.status_code == 200 and response.data != old
    new_id, _ = _outcomes(app)
    assert draws == [outcomes[0]]
    assert {k[0] for k in _rows(app)} == {new_id}


def test_unpublishing_deletes_the_charts_and_publishing_draws_them_again(
    app, client, demo, study_published, draws
):
    _report_id, outcomes = _outcomes(app)
    assert client.post(f"/r/studies/{demo}/report/unpublish").status_code == 302
    assert _rows(app) == {}
    assert client.get(f"/f/demo/charts/{outcomes[0]}.png").status_code == 404
    del draws[:]
    assert publish_findings(client, demo).status_code == 302
    assert sorted(draws) == sorted(outcomes * 2) and len(_rows(app)) == 2 * len(outcomes)


def test_two_first_stores_of_one_chart_keep_one_and_a_deleted_report_keeps_none(
    app, demo, study_published
):
    report_id, _ = _outcomes(app)
    with app.app_context():
        inputs = findings.chart_inputs("test")
        first = findings.store_chart(report_id, "card:x", "png", inputs, b"first")
        # A second request that drew the same chart at the same time: its insert loses.
        second = findings.store_chart(report_id, "card:x", "png", inputs, b"second")
        assert (first, second) == (
            hashlib.sha256(b"first").hexdigest(),
            hashlib.sha256(b"second").hexdigest(),
        )
        assert findings.stored_chart(report_id, "card:x", "png", inputs) == (first, b"first")
        # A report deleted meanwhile (a withdrawal): nothing is stored for it, nothing fails.
        findings.forget_reports(demo)
        db.session.commit()
        findings.store_chart(report_id, "card:x", "svg", inputs, b"late")
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ReportChart)) == 0


def test_report_figures_are_drawn_once(app, client, demo, study_published, monkeypatch):
    calls = []
    real = routes._drawn

    def counted(spec, fmt):
        calls.append((spec.name, fmt))
        return real(spec, fmt)

    monkeypatch.setattr(routes, "_drawn", counted)
    report_id, _ = _outcomes(app)
    url = f"/r/studies/{demo}/report/{report_id}/figures/paired_trust.svg"
    first, second = client.get(url), client.get(url)
    assert first.status_code == second.status_code == 200 and first.data == second.data
    assert calls == [("paired_trust", "svg")]
    assert second.headers["Cache-Control"] == "private, no-cache"
    stored = _rows(app, "figure:")
    assert stored[(report_id, "figure:paired_trust", "svg")][1] == first.data
    # The standalone report embeds the stored figure and draws only those not stored yet.
    client.get(f"/r/studies/{demo}/report/{report_id}/report.html")
    assert calls.count(("paired_trust", "svg")) == 1
