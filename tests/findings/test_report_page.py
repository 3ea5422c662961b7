"""The report page's words and numbers: every label exact, one unit per outcome, one hash, a
summary first, sections that collapse and a print stylesheet."""

from __future__ import annotations

import html
import json
import re

import pytest
import sqlalchemy as sa

from analysis.findings import ci_unadjusted
from survey.extensions import db
from survey.findings import service
from survey.models import Report
from tests.findings.support import (
    GUARD_EFFECTS,
    PLAN,
    fill,
    owner_id,
    page_text,
    preregister,
    publish,
)

pytestmark = pytest.mark.once


@pytest.fixture
def report(app, client, demo, analyses, auth):
    """The demo preregistered, 24 simulated participants (some fail a check), closed; the
    report page's HTML and its results.json."""
    preregister(app, demo, PLAN)
    fill(app, demo, 24, seed=2, effects=GUARD_EFFECTS)
    auth.sign_in(owner_id(app))
    response = client.get(f"/r/studies/{demo}/report")
    assert response.status_code == 200
    with app.app_context():
        row = db.session.scalar(sa.select(Report))
        results = service.results_json(row)
    return response.get_data(as_text=True), results


def _rows(page: str, table_class: str, labelled_by: str = "") -> list[str]:
    """The visible text of each body row of the tables with that class (and, if given, that
    aria-labelledby), in order."""
    rows = []
    label = rf' aria-labelledby="{labelled_by}"' if labelled_by else ""
    for table in re.findall(rf'<table class="{table_class}"{label}.*?</table>', page, re.S):
        for row in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>", 1)[1], re.S):
            rows.append(re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", row))).strip())
    return rows


@pytest.mark.slow
def test_summary_first_then_collapsible_sections(report):
    """Every preregistered verdict sits in one table before anything else of the report."""
    page, results = report
    text = page_text_of(page)
    glance = text.index("verdicts at a glance")
    assert glance < text.index(" Findings ") < text.index("Report as one HTML file")
    summary = _rows(page, "summary-table")
    preregistered = [f for f in results["findings"] if f["preregistered"]]
    assert len(preregistered) == 3 and len(summary) == len(results["findings"])
    verdicts = {
        "difference": "Difference",
        "no_difference": "No reliable difference",
        "inconclusive": "Inconclusive",
    }
    # Preregistered first, each with its verdict, estimate and interval.
    first_rows = summary[: len(preregistered)]
    for row, finding in zip(first_rows, preregistered, strict=True):
        assert verdicts[finding["verdict"]] in row and "Preregistered" in row
        assert "AI minus real:" in row and " to " in row
    assert "AI headshots are trusted less than real photographs" in summary[0]
    # The sections collapse; the study tabs get their stylesheet; a print stylesheet exists.
    assert page.count('<details class="outcome report-part"') == len(results["findings"])
    assert "css/researcher" in page and "js/report" in page
    # A wide table's title stays outside its sideways-scrolling box, readable on a phone.
    assert '<p class="table-title" id="tests-trust">Tests</p>' in page


def page_text_of(page: str) -> str:
    """Visible text of an HTML string."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


@pytest.mark.slow
def test_intervals_say_their_level_and_whether_they_are_adjusted(report):
    """The TOST row is labelled 90 % CI; an interval beside a changed p says 'unadjusted'."""
    page, results = report
    rows = _rows(page, "tests")
    tests = [t for t in results["tests"]]
    assert len(rows) == len(tests)
    by_outcome = {}
    for test in tests:
        by_outcome.setdefault(test["outcome"], []).append(test)
    # The rows come outcome by outcome in the order of results.json's tests.
    ordered = [t for name in dict.fromkeys(t["outcome"] for t in tests) for t in by_outcome[name]]
    tost = [(row, t) for row, t in zip(rows, ordered, strict=True) if t["method"] == "tost"]
    assert tost and all("90% CI" in row and "95% CI" not in row for row, _t in tost)
    unadjusted = 0
    for row, test in zip(rows, ordered, strict=True):
        assert ("unadjusted" in row) == ci_unadjusted(test), row
        unadjusted += ci_unadjusted(test)
    assert unadjusted > 0


@pytest.mark.slow
def test_one_unit_readable_names_and_no_doubled_labels(report):
    """Accuracies in percent and percentage points in tables as in the claims; readable family
    and test names; no 'Exploratory: Inconclusive:' or doubled full stop."""
    page, results = report
    text = page_text_of(page)
    for raw in (
        "participant_wilcoxon",
        "identity_t",
        "identity_wilcoxon",
        "pooled_binomial",
        "mean minus 0.5",
        "ai minus real",
        "Inconclusive:",
        "..",
    ):
        assert raw not in text.replace("...", ""), raw
    assert "(Wilcoxon tests, participants)" in text
    assert "Wilcoxon signed-rank test (no continuity correction)" in text
    assert [f["label"] for f in results["families"]][:2] == [
        "Primary outcomes",
        "Secondary outcomes",
    ]
    detection = next(
        t
        for t in results["tests"]
        if t["outcome"] == "detection_accuracy"
        and t["method"] == "one_sample_t"
        and t["level"] == "participant"
    )
    assert (
        f"{detection['estimate'] * 100:.1f} accuracy minus chance (50%), percentage points" in text
    )
    assert f"{detection['ci_low'] * 100:.1f} to {detection['ci_high'] * 100:.1f}" in text
    described = next(
        d
        for d in results["descriptives"]
        if d["outcome"] == "detection_accuracy"
        and d["level"] == "participant"
        and d["condition"] is None
    )
    assert f"{described['mean'] * 100:.1f}" in text
    # The accuracy's descriptives table shows percent, never proportions (a proportion's digits
    # may stand elsewhere on the page by chance, e.g. in a p-value or another outcome's d').
    cells = " | ".join(_rows(page, "descriptives", "descriptives-detection_accuracy"))
    assert cells
    assert f"{described['mean'] * 100:.1f}" in cells
    assert f"{described['mean']:.3f}" not in cells


@pytest.mark.slow
def test_alt_text_counts_the_participants_plotted(report):
    """The detection figure's alt text states the included N, not rows per condition (3N)."""
    page, results = report
    alts = {
        src.rsplit("/", 1)[1]: html.unescape(alt)
        for src, alt in re.findall(r'<img src="([^"]+)" alt="([^"]+)"', page)
    }
    n = results["n_participants"]
    assert alts["detection.svg"].startswith(
        f"Telling AI headshots from real photographs, {n} participants."
    )
    assert alts["choice_real.svg"].startswith(
        f"Share of pairs in which the real photograph was chosen, {n} participants."
    )


@pytest.mark.slow
def test_one_sha256_on_the_page_citation_results_and_findings_json(app, client, demo, report):
    """The data hash a reader can check is results.json's, everywhere it is shown."""
    page, results = report
    sha = results["data_sha256"]
    assert re.fullmatch(r"[0-9a-f]{64}", sha)
    assert sha in page_text_of(page)
    assert publish(client, demo).status_code == 302
    public = page_text(client.get("/f/demo"))
    assert f"data SHA-256 {sha[:16]}…" in public
    findings = json.loads(client.get("/f/demo/findings.json").get_data(as_text=True))
    assert findings["data_sha256"] == sha
    with app.app_context():
        row = db.session.scalar(sa.select(Report))
        assert service.card_footer("x", row).startswith(f"x · data SHA-256 {sha[:12]} ·")
        # The report's cache key (participants and plan included) is never shown as the hash.
        assert row.data_sha256 != sha and row.data_sha256 not in page


def test_wilcoxon_rows_and_methods_say_which_continuity_correction_ran():
    """The test's name and the methods paragraph follow the test's continuity_correction."""
    from survey.findings.methods import _tests_sentence
    from survey.findings.present import method_name

    on = {"outcome": "trust", "method": "wilcoxon", "continuity_correction": True}
    off = {**on, "continuity_correction": False}
    assert method_name(on) == "Wilcoxon signed-rank test (with continuity correction)"
    assert method_name(off) == "Wilcoxon signed-rank test (no continuity correction)"
    assert "(normal approximation, with continuity correction)" in _tests_sentence(
        {"tests": [on], "correction": "holm", "alpha": 0.05}
    )
    assert "(normal approximation, no continuity correction)" in _tests_sentence(
        {"tests": [off], "correction": "holm", "alpha": 0.05}
    )


def test_analysis_notes_name_outcomes_models_and_terms_in_words():
    """The notes under Warnings are results.json's own, read in the page's words: no
    outcome keys, method keys or model coefficient names (conditionai, (Intercept))."""
    from survey.findings.present import analysis_note

    results = {"tests": [{"outcome": "trust", "method": "clmm", "scale": [1, 7]}]}
    results["tests"].append({"outcome": "detection_accuracy", "method": "glmm"})
    assert analysis_note(
        results,
        "trust: clmm: random intercepts only: the random-slopes model was singular (singular "
        "fit: the conditionai variance for participant is estimated at (or near) zero "
        "(theta = 9.6e-07))",
    ) == (
        "Trust, ordinal mixed model (CLMM): random intercepts only: the random-slopes model was "
        "singular (singular fit: the AI-versus-real slope variance across participants is "
        "estimated at (or near) zero (theta = 9.6e-07))"
    )
    assert analysis_note(
        results,
        "detection_accuracy: glmm: singular fit: the (Intercept) variance for identity is "
        "estimated at (or near) zero (theta = 3.6e-08)",
    ) == (
        "AI-detection accuracy, logistic mixed model: singular fit: the intercept variance "
        "across identities is estimated at (or near) zero (theta = 3.6e-08)"
    )
    assert analysis_note(results, "trust: clmm did not converge; treat it with care") == (
        "Trust, ordinal mixed model (CLMM) did not converge; treat it with care"
    )
    assert analysis_note(
        results,
        "detection_accuracy: glmm: singular fit: the conditionai effect for identity is "
        "perfectly correlated with the intercept (correlation +-1)",
    ) == (
        "AI-detection accuracy, logistic mixed model: singular fit: the AI-versus-real slope "
        "across identities is perfectly correlated with the intercept (correlation +-1)"
    )
    # Notes in words already, and prefixes that name no outcome of the results, stay as written.
    for note in ("recognition d': 40 of 46 cells", "lmm: something"):
        assert analysis_note(results, note) == note


def test_moderator_notes_name_model_terms_in_words():
    from survey.findings.present import moderation_view

    view = moderation_view(
        {
            "moderator": "age_band",
            "method": "glmm",
            "notes": [
                "singular fit: the (Intercept) variance for identity is estimated at (or near) "
                "zero (theta = 5.2e-08)"
            ],
            "levels": [{"level": "60+", "note": "the conditionai variance for participant is 0"}],
        }
    )
    assert view["notes"] == [
        "singular fit: the intercept variance across identities is estimated at (or near) "
        "zero (theta = 5.2e-08)"
    ]
    assert view["rows"][0]["note"] == "the AI-versus-real slope variance across participants is 0"


@pytest.mark.slow
def test_the_design_names_the_preregistered_plan_in_one_sentence(report):
    page, results = report
    outcomes = ", ".join(results["plan"]["primary_outcomes"])
    alpha = results["plan"]["alpha"]
    assert (
        f"<li>Preregistered plan: α = {alpha}, Holm correction, primary outcomes {outcomes}.</li>"
        in page
    )
