"""The public findings page: the claim guard, aggregates only, publishing rules, charts, embed."""

from __future__ import annotations

import html
import io
import json
import re

import pytest
import sqlalchemy as sa
from PIL import Image as PILImage

from survey.extensions import db
from survey.findings import service
from survey.models import AuditEvent, RecruitmentId, Report, Study, utcnow
from survey.studies import change_state
from tests.findings.support import (
    GUARD_EFFECTS,
    PLAN,
    fill,
    member,
    owner_id,
    page_text,
    preregister,
    publish,
    publish_findings,
    set_state,
)


@pytest.fixture
def published(app, client, demo, analyses, auth):
    """The demo with 20 simulated participants (Prolific ids), closed and published."""
    ids = fill(app, demo, 20, seed=11, prolific=True)
    auth.sign_in(owner_id(app))
    assert client.get(f"/r/studies/{demo}/report").status_code == 200
    response = publish(client, demo)
    assert response.status_code == 302
    return ids


@pytest.mark.slow
@pytest.mark.once
def test_claim_guard_wording_is_the_same_everywhere(app, client, demo, auth):
    """Difference, no reliable difference and inconclusive claims, verbatim from results.json.

    The full analysis runs (mixed models included) on data built to give one verdict per
    outcome; the report, the public page, the embed, the downloaded HTML and the chart alt
    texts all carry the very sentences of results.json.
    """
    preregister(app, demo, PLAN)
    fill(app, demo, 24, seed=2, effects=GUARD_EFFECTS)
    auth.sign_in(owner_id(app))
    report_page = page_text(client.get(f"/r/studies/{demo}/report"))
    assert publish(client, demo).status_code == 302
    with app.app_context():
        report = db.session.scalar(sa.select(Report).where(Report.published_at.is_not(None)))
        results = service.results_json(report)
    findings = {f["outcome"]: f for f in results["findings"]}
    assert findings["trust"]["verdict"] == "difference"
    assert findings["professional"]["verdict"] == "no_difference"
    assert findings["recognition_accuracy"]["verdict"] == "inconclusive"

    # The wording follows the verdict (the guard of analysis.findings).
    trust, professional, recognition = (
        findings[k]["claim"] for k in ("trust", "professional", "recognition_accuracy")
    )
    assert trust.startswith("Preregistered: AI headshots were trusted less than real photographs")
    assert "This supports the preregistered hypothesis" in trust
    assert professional.startswith(
        "Preregistered: There was no reliable difference in ratings of professional"
    )
    assert "equivalence test (TOST)" in professional
    assert recognition.startswith(
        "Preregistered (inconclusive): the data neither show a difference in recognition accuracy"
    )
    assert "no reliable difference" not in trust + recognition
    assert "Exploratory: " in findings["choice_real"]["claim"]

    public = client.get("/f/demo")
    public_text = page_text(public)
    embed_text = page_text(client.get("/f/demo/embed"))
    standalone = html.unescape(
        client.get(f"/r/studies/{demo}/report/{report.id}/report.html").get_data(as_text=True)
    )
    alts = [html.unescape(a) for a in re.findall(r'alt="([^"]+)"', public.get_data(as_text=True))]
    for finding in results["findings"]:
        for text in (report_page, public_text, standalone):
            assert finding["claim"] in text
        assert any(finding["claim"] in alt for alt in alts)
    # The embed (a 480 px frame) gives the preregistered findings in plain words, their
    # wording following the same verdicts, and links to the claims.
    from survey.findings.studio import embed_sentences, studio_summary

    shown = embed_sentences(studio_summary(service.public_results(report)))
    assert {s["outcome"] for s in shown} == {"trust", "professional", "recognition_accuracy"}
    for item in shown:
        assert item["text"] in embed_text
    assert "People trusted AI headshots less than real photographs" in embed_text
    assert (
        "There was no reliable difference between how people rated AI headshots and real "
        "photographs on the professional scale" in embed_text
    )
    assert "The study cannot say whether there is a difference between how accurately" in embed_text
    for badge in (
        "Difference",
        "No reliable difference",
        "Inconclusive",
        "Preregistered",
        "Exploratory",
    ):
        assert badge in public_text
    # The facts beside the trust claim are its own numbers.
    test = results["tests"][findings["trust"]["supported_by"][0]]
    assert f"AI minus real: {test['estimate']:.2f} points on the 1–7 scale" in public_text
    assert f"{test['ci_low']:.2f} to {test['ci_high']:.2f}" in public_text
    assert f"{test['n']} participants" in public_text


@pytest.mark.slow
@pytest.mark.once
def test_public_page_exposes_no_participant_level_data(app, client, demo, published):
    """No participant id, recruitment id or free text on the page, the embed, charts or JSON."""
    with app.app_context():
        external = db.session.scalars(sa.select(RecruitmentId.external_id)).all()
        report = db.session.scalar(sa.select(Report).where(Report.published_at.is_not(None)))
        outcomes = [f["outcome"] for f in service.results_json(report)["findings"]]
        # The report itself knows participants: the scan below would find them if they leaked.
        assert service.results_json(report)["exclusions"] or service.report_data(report)["tables"]
    assert len(external) == len(published) == 20
    bodies = {url: client.get(url) for url in ("/f/demo", "/f/demo/embed", "/f/demo/findings.json")}
    for outcome in outcomes:
        for fmt in ("png", "svg"):
            url = f"/f/demo/charts/{outcome}.{fmt}"
            bodies[url] = client.get(url)
    for url, response in bodies.items():
        assert response.status_code == 200, url
        data = response.data
        for secret in published + external:
            assert secret.encode() not in data, (url, secret)
        assert b"PROLIFIC-" not in data
    public_json = json.loads(bodies["/f/demo/findings.json"].data)
    assert not {"exclusions", "flags", "warnings", "detection_by_participant", "report_data"} & set(
        public_json
    )
    assert public_json["findings"] == service.results_json(report)["findings"]
    page = bodies["/f/demo"].get_data(as_text=True)
    assert "<script" not in page and "onclick" not in page and 'style="' not in page


@pytest.mark.slow
@pytest.mark.once
def test_public_page_charts_citation_and_embed(app, client, demo, published):
    """Charts of 1200 x 675 (PNG) and SVG, a citation, an embed that alone may be framed."""
    png = client.get("/f/demo/charts/trust.png?download=1")
    assert png.status_code == 200 and png.mimetype == "image/png"
    assert png.headers["Content-Disposition"] == 'attachment; filename="demo-trust.png"'
    with PILImage.open(io.BytesIO(png.data)) as image:
        assert (image.format, image.size) == ("PNG", (1200, 675))
    svg = client.get("/f/demo/charts/trust.svg")
    assert svg.mimetype == "image/svg+xml" and b"<svg" in svg.data
    cached = client.get("/f/demo/charts/trust.svg", headers={"If-None-Match": svg.headers["ETag"]})
    assert cached.status_code == 304
    # Unpublishing must take charts down: revalidated on every use, never "immutable".
    for response in (png, svg, cached):
        assert response.headers["Cache-Control"] == "public, no-cache"
    assert client.get("/f/demo/charts/nothing.png").status_code == 404
    assert client.get("/f/demo/charts/trust.bmp").status_code == 404

    # Citation: team, date, URL, data hash and analysis version; the embed snippet; methods.
    with app.app_context():
        report = db.session.scalar(sa.select(Report).where(Report.published_at.is_not(None)))
    page = client.get("/f/demo")
    text = page_text(page)
    assert "Demo researcher (20" in text
    assert "Faces and first impressions (demo). Likeness findings, published" in text
    assert "http://localhost/f/demo" in text
    assert f"data SHA-256 {service.cited_sha256(report)[:16]}" in text
    assert f"analysis {report.analysis_version}" in text
    assert '<iframe src="http://localhost/f/demo/embed"' in text
    assert f"{len(published)} participants took part through Prolific" in text

    # Only the embed may be framed, by any site; it runs no script.
    embed = client.get("/f/demo/embed")
    assert "X-Frame-Options" not in embed.headers
    assert "frame-ancestors *" in embed.headers["Content-Security-Policy"]
    assert "script-src 'none'" in embed.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]


@pytest.mark.slow
def test_unpublish_takes_the_page_down_and_reopening_hides_it(app, client, demo, published):
    """Unpublished, unknown, or reopened: 404; publishing and unpublishing are audited."""
    assert client.get("/f/demo").status_code == 200
    assert client.get("/f/unknown-study").status_code == 404
    set_state(app, demo, "open")
    assert client.get("/f/demo").status_code == 404
    assert client.get("/f/demo/embed").status_code == 404
    set_state(app, demo, "closed")
    assert client.get("/f/demo").status_code == 200
    assert client.post(f"/r/studies/{demo}/report/unpublish").status_code == 302
    for url in ("/f/demo", "/f/demo/embed", "/f/demo/charts/trust.png", "/f/demo/findings.json"):
        assert client.get(url).status_code == 404
    with app.app_context():
        actions = db.session.scalars(
            sa.select(AuditEvent.action)
            .where(AuditEvent.action.like("findings.%"))
            .order_by(AuditEvent.id)
        ).all()
        assert db.session.get(Study, demo).findings_published_at is None
    assert actions == ["findings.publish", "findings.unpublish"]


@pytest.mark.slow
def test_publishing_needs_the_owner_a_closed_study_and_20_participants(
    app, client, demo, analyses, make_researcher, auth
):
    """Each refusal says why; nothing is published until every condition holds."""
    fill(app, demo, 5, close=False)
    editor = member(app, demo, "editor", "editor@example.org", make_researcher)
    auth.sign_in(editor)
    assert publish(client, demo).status_code == 403
    auth.sign_in(owner_id(app))
    response = publish_findings(client, demo, follow_redirects=True)
    assert "Only a closed (or archived) study's findings can be published" in page_text(response)
    set_state(app, demo, "closed")
    response = publish_findings(client, demo, follow_redirects=True)
    assert (
        "Findings are published only from at least 20 included participants; this report "
        "includes 5."
    ) in page_text(response)
    assert client.get("/f/demo").status_code == 404
    with app.app_context():
        assert db.session.get(Study, demo).findings_published_at is None
        assert (
            db.session.scalar(
                sa.select(sa.func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action == "findings.publish")
            )
            == 0
        )
    app.config["WTF_CSRF_ENABLED"] = True
    assert publish(client, demo).status_code == 400


@pytest.mark.slow
def test_a_finding_without_a_test_is_shown_with_its_reason(app, client, demo):
    """An outcome that could not be tested keeps its inconclusive finding on page and chart."""
    from analysis.figures import report_figures
    from analysis.report import analyse
    from survey.findings import present
    from tests.analysis.helpers import make_participants, make_trials

    trials = make_trials(
        participants=[f"p{i}" for i in range(5)],
        rating=lambda p, i, c: (4 if c == "real" else 3) + (p + i).count("3"),
    )
    result = analyse(
        trials,
        make_participants(trials),
        mixed_models=False,
        plan={"primary_outcomes": ["trust", "detection_accuracy"]},
    )
    claims = {f["outcome"]: f["claim"] for f in result.results["findings"]}
    assert "could not be tested (no data in this study)" in claims["detection_accuracy"]
    stored = {
        **result.results,
        service.REPORT_DATA: {
            "sample": {"recruited": 5, "included": 5, "reasons": {}},
            "software": {},
            "tables": {k: service._table_json(v) for k, v in result.tables.items()},
        },
    }
    with app.app_context():
        study = db.session.get(Study, demo)
        change_state(study, "closed", None)
        now = utcnow()
        study.findings_published_at = now
        db.session.add(
            Report(
                study_id=demo,
                data_sha256="0" * 64,
                analysis_version="test",
                status="done",
                results=stored,
                finished_at=now,
                published_at=now,
            )
        )
        db.session.commit()
    text = page_text(client.get("/f/demo"))
    for claim in claims.values():
        assert claim in text
    png = client.get("/f/demo/charts/detection_accuracy.png")
    with PILImage.open(io.BytesIO(png.data)) as image:
        assert image.size == (1200, 675)
    specs = report_figures(
        result.results, result.tables["participant_scores"], result.tables["identity_scores"]
    )
    sections = present.outcome_sections(result.results, specs)
    assert [s.name for s in sections] == ["trust", "detection_accuracy"]
    assert (
        sections[1].finding["claim"] == claims["detection_accuracy"] and sections[1].facts is None
    )
