"""A section of the report or the public page that fails shows its own note; the rest stands."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from survey.extensions import db
from survey.findings import present, service, studio
from survey.models import Report
from tests.findings.support import fill, owner_id, page_text, publish_findings

pytestmark = pytest.mark.once

NOTE = (
    "could not be shown: an unexpected error (RuntimeError); the rest of the report is "
    "unaffected. Please report this."
)


def broken(*_args, **_kwargs):
    """A section builder that fails."""
    raise RuntimeError("a section builder failed")


@pytest.fixture
def closed_demo(app, client, demo, analyses, auth):
    """The demo with six simulated participants, closed, its report made; the owner signed in."""
    fill(app, demo, 6)
    auth.sign_in(owner_id(app))
    assert client.get(f"/r/studies/{demo}/report").status_code == 200
    with app.app_context():
        return db.session.scalar(sa.select(Report.id).where(Report.study_id == demo))


def _fail_outcome(monkeypatch, name: str) -> None:
    """Make the section of one outcome fail to build; the others build as usual."""
    original = present.outcome_section

    def section(results, outcome, *args):
        if outcome == name:
            raise RuntimeError(f"{name} failed")
        return original(results, outcome, *args)

    monkeypatch.setattr(present, "outcome_section", section)


def test_a_failing_section_shows_its_note_and_the_others_render(
    app, client, demo, closed_demo, monkeypatch, caplog
):
    """Methods and one outcome fail: both show the note in place; every other section stands."""
    monkeypatch.setattr(service, "methods_text", broken)
    _fail_outcome(monkeypatch, "trust")
    with caplog.at_level(logging.ERROR):
        page = client.get(f"/r/studies/{demo}/report")
    assert page.status_code == 200
    text = page_text(page)
    assert f"Methods. This section {NOTE}" in text
    assert f"Outcome trust. This section {NOTE}" in text
    assert text.count("This section could not be shown") == 2
    # The failures are logged with their tracebacks.
    failed = [r for r in caplog.records if "could not be shown" in r.getMessage()]
    assert {r.args[0] for r in failed} == {"methods", "outcome trust"}
    assert all(r.exc_info and r.exc_info[0] is RuntimeError for r in failed)
    # Every other section is there: the summary, the facts, the findings, the sample, the
    # design, the other outcomes with their tests and figures, the downloads.
    for expected in (
        "verdicts at a glance",
        "Included",
        "Findings",
        "Sample",
        "Design",
        "Recognition accuracy",
        "Ratings of professional",
        "Paired t-test",
        "Downloads",
        "Public findings page",
    ):
        assert expected in text, expected
    assert 'id="outcome-trust"' not in page.get_data(as_text=True)
    assert 'id="outcome-professional"' in page.get_data(as_text=True)


def test_a_section_whose_markup_fails_is_replaced_in_the_page_and_the_download(
    app, client, demo, closed_demo, monkeypatch
):
    """A value only the template reads (the sample's reasons) breaks only its own section."""
    original = service.report_data

    def bad_sample(report):
        data = dict(original(report))
        assert data["sample"]["excluded"] == 0  # the methods paragraph reads no reasons
        data["sample"] = {**data["sample"], "reasons": ["not a mapping"]}
        return data

    monkeypatch.setattr(service, "report_data", bad_sample)
    for response in (
        client.get(f"/r/studies/{demo}/report"),
        client.get(f"/r/studies/{demo}/report/{closed_demo}/report.html"),
    ):
        assert response.status_code == 200
        text = page_text(response)
        assert (
            "Sample. This section could not be shown: an unexpected error (UndefinedError)" in text
        )
        assert text.count("This section could not be shown") == 1
        for expected in (
            "verdicts at a glance",
            "Design",
            "Methods paragraph",
            "Trust",
            "participants took part",
        ):
            assert expected in text, expected


def test_a_figure_that_cannot_be_drawn_is_a_note_in_the_standalone_report(
    app, client, demo, closed_demo, monkeypatch
):
    """The downloaded HTML draws its figures inside: one that fails leaves the others."""
    from survey.findings import routes

    original = routes._drawn

    def drawn(spec, fmt):
        if spec.name == "paired_trust":
            raise RuntimeError("cannot draw")
        return original(spec, fmt)

    monkeypatch.setattr(routes, "_drawn", drawn)
    response = client.get(f"/r/studies/{demo}/report/{closed_demo}/report.html")
    assert response.status_code == 200
    text = page_text(response)
    assert f"Figure paired_trust. This section {NOTE}" in text
    assert text.count("This section could not be shown") == 1
    assert response.get_data(as_text=True).count('src="data:image/svg+xml;base64,') >= 3


def test_the_public_page_and_embed_show_a_failing_part_in_place(
    app, client, demo, closed_demo, monkeypatch
):
    """On the public page a failing finding or methods paragraph is a note; the rest stands."""
    monkeypatch.setattr(service, "MIN_PUBLIC_N", 1)
    assert publish_findings(client, demo).status_code == 302
    original = present.public_finding

    def finding(results, item):
        if item["outcome"] == "trust":
            raise RuntimeError("trust failed")
        return original(results, item)

    monkeypatch.setattr(present, "public_finding", finding)
    monkeypatch.setattr(service, "methods_text", broken)
    page = client.get("/f/demo")
    assert page.status_code == 200
    text = page_text(page)
    page_note = (
        "could not be shown: an unexpected error (RuntimeError); the rest of the page "
        "is unaffected. Please report this."
    )
    assert f"Finding trust. This section {page_note}" in text
    assert f"Methods. This section {page_note}" in text
    assert text.count("This section could not be shown") == 2
    assert "Recognition accuracy" in text and "Cite these findings" in text
    # The embed shows the plain-language sentences; when they fail, its note stands in their place.
    monkeypatch.setattr(studio, "studio_summary", broken)
    embed = client.get("/f/demo/embed")
    assert embed.status_code == 200
    assert page_text(embed).count("This section could not be shown") == 1
    assert "Faces and first impressions" in page_text(embed)
    assert "findings in the researchers' own words" in page_text(embed)
