"""The study report: access, what it shows, the cache, background computation and downloads."""

from __future__ import annotations

import html
import io
import json
import re
import threading
import zipfile
from datetime import timedelta

import pytest
import sqlalchemy as sa
from PIL import Image as PILImage

from survey import jobs
from survey.extensions import db
from survey.findings import service
from survey.models import Block, Report, Study, utcnow
from tests.findings.support import (
    FAST,
    Effects,
    count_analyses,
    fill,
    member,
    owner_id,
    page_text,
)
from tests.helpers import refreeze


def test_report_is_for_members_only(app, client, demo, make_researcher, auth):
    """Anonymous visitors are sent to sign in, strangers get 404, viewers may read it."""
    url = f"/r/studies/{demo}/report"
    assert client.get(url).status_code == 302
    stranger = make_researcher(email="stranger@example.org")
    auth.sign_in(stranger)
    assert client.get(url).status_code == 404
    viewer = member(app, demo, "viewer", "viewer@example.org", make_researcher)
    auth.sign_in(viewer)
    response = client.get(url)
    assert response.status_code == 200
    assert "No data yet" in page_text(response)


@pytest.mark.slow
@pytest.mark.once
def test_report_shows_sample_findings_tests_figures_and_methods(app, client, demo, auth):
    """The full analysis (mixed models included) of simulated data, laid out for the team."""
    fill(app, demo, 8, effects=Effects(fail_attention=0.2, stop_early=0.15), seed=4)
    auth.sign_in(owner_id(app))
    response = client.get(f"/r/studies/{demo}/report")
    assert response.status_code == 200
    text = page_text(response)
    with app.app_context():
        report = db.session.scalar(sa.select(Report))
        results = service.results_json(report)
        sample = service.report_data(report)["sample"]
    assert report.status == "done"
    for finding in results["findings"]:
        assert finding["claim"] in text
    assert sample["recruited"] == 8
    assert sample["included"] == results["n_participants"]
    assert sample["excluded"] == 8 - results["n_participants"] > 0
    assert sum(row["recruited"] for row in sample["by_list"]) == 8
    assert {row["device"] for row in sample["by_device"]} == {"desktop", "mobile"}
    assert f"Included {results['n_participants']} participants" in text
    # Small N and few identities are warned about in plain words.
    assert f"Only {results['n_participants']} participants are included" in text
    assert "Only 8 identities were shown" in text
    # Every test, the mixed models with their lme4 formula, preregistered or exploratory.
    methods = {t["method"] for t in results["tests"]}
    assert {"paired_t", "wilcoxon", "lmm", "glmm", "one_sample_t", "binomial"} <= methods
    for test in results["tests"]:
        if test["method"] in ("lmm", "glmm"):
            assert test["formula"] in text
    # The detection model's estimate is AI minus real on the log-odds scale, labelled so in its
    # own row (not with the one-sample tests' "minus chance").
    assert text.count("AI minus real, log-odds of a correct answer") == sum(
        t["method"] == "glmm" for t in results["tests"]
    )
    assert "mean minus 0.5" not in text
    assert "Exploratory" in text and "Preregistered" not in text.replace("preregistered", "")
    # Figures: alt text with numbers on every image, served as SVG.
    images = re.findall(r'<img src="([^"]+)" alt="([^"]+)"', response.get_data(as_text=True))
    names = {src.rsplit("/", 1)[1] for src, _alt in images}
    assert {
        "paired_trust.svg",
        "paired_recognition_accuracy.svg",
        "choice_real.svg",
        "detection.svg",
        "identities_trust.svg",
    } <= names
    # d' and c need enough signal-detection data; which trials the participants who stop early
    # reach depends on their random schedules, so the figure is there exactly when both are.
    tested = {t["outcome"] for t in results["tests"]}
    assert ("sdt.svg" in names) == ({"d_prime", "criterion"} <= tested)
    for src, alt in images:
        assert re.search(r"\d", alt) and len(alt) > 80
        figure = client.get(html.unescape(src))
        assert figure.status_code == 200 and figure.mimetype == "image/svg+xml"
        assert figure.data.lstrip().startswith(b"<?xml")
    # The methods paragraph names the design and the analysis.
    assert "4 counterbalancing lists" in text
    assert f"The analysis includes {results['n_participants']} participants" in text
    assert "Holm method" in text and "default rules" in text


@pytest.mark.slow
def test_second_visit_reuses_the_report_and_new_data_recompute(
    app, client, demo, monkeypatch, auth, analyses
):
    """No recomputation without new data; a new participant's answers start a new report."""
    fill(app, demo, 3, close=False)
    auth.sign_in(owner_id(app))
    url = f"/r/studies/{demo}/report"
    assert client.get(url).status_code == 200
    assert client.get(url).status_code == 200
    assert len(analyses) == 1
    # A fresh worker finds the hash of unchanged data in the report row, without reading rows.
    service._HASHES.clear()
    loads = []
    monkeypatch.setattr(service, "load_inputs", lambda study: loads.append(1))
    assert client.get(url).status_code == 200
    assert len(analyses) == 1 and loads == []
    monkeypatch.undo()
    analyses = count_analyses(monkeypatch)
    fill(app, demo, 1, close=False, seed=9)
    assert client.get(url).status_code == 200
    assert len(analyses) == 1
    with app.app_context():
        rows = db.session.execute(sa.select(Report.status, Report.data_sha256)).all()
    assert [r.status for r in rows] == ["done", "done"]
    assert rows[0].data_sha256 != rows[1].data_sha256


@pytest.mark.slow
def test_large_study_shows_progress_then_the_report(app, client, demo, monkeypatch, auth):
    """Above the inline limit the analysis runs in the background; the page refreshes itself."""
    fill(app, demo, 3)
    app.config["REPORT_INLINE_MAX_ROWS"] = 10
    release, started, calls = threading.Event(), threading.Event(), []

    def slow(*args, **kwargs):
        calls.append(1)
        started.set()
        assert release.wait(30)
        return FAST(*args, **kwargs)

    monkeypatch.setattr(service, "analyse", slow)
    auth.sign_in(owner_id(app))
    url = f"/r/studies/{demo}/report"
    first = client.get(url)
    assert first.status_code == 200
    assert '<meta http-equiv="refresh" content="3">' in first.get_data(as_text=True)
    assert "Computing the report" in page_text(first)
    assert started.wait(30)
    again = client.get(url)
    assert "Computing the report" in page_text(again)
    release.set()
    assert jobs.join_threads(30)
    done = client.get(url)
    assert 'http-equiv="refresh"' not in done.get_data(as_text=True)
    assert "Findings" in page_text(done)
    assert len(calls) == 1


@pytest.mark.slow
def test_failed_analysis_is_explained_and_can_be_retried(app, client, demo, monkeypatch, auth):
    """A failure is a state with a plain message; 'Compute again' runs the analysis again."""
    fill(app, demo, 3)

    def broken(*args, **kwargs):
        raise ValueError("no data left to analyse: 3 of 3 participant(s) excluded")

    monkeypatch.setattr(service, "analyse", broken)
    auth.sign_in(owner_id(app))
    url = f"/r/studies/{demo}/report"
    text = page_text(client.get(url))
    assert "The report could not be computed" in text
    assert "no data left to analyse: 3 of 3 participant(s) excluded" in text
    assert "Compute again" in text
    monkeypatch.setattr(service, "analyse", FAST)
    assert "The report could not be computed" in page_text(client.get(url))  # cached failure
    response = client.post(f"/r/studies/{demo}/report/retry")
    assert response.status_code == 302
    text = page_text(client.get(url))
    assert "The report could not be computed" not in text and "Findings" in text


def test_retry_needs_the_csrf_token(app, client, demo, auth):
    """The one-click actions are forms with CSRF protection."""
    app.config["WTF_CSRF_ENABLED"] = True
    auth.sign_in(owner_id(app))
    assert client.post(f"/r/studies/{demo}/report/retry").status_code == 400


def test_a_computation_that_never_finished_is_marked_failed(app, client, demo, analyses, auth):
    """A pending row older than the stale limit (a restarted server) becomes a failure."""
    fill(app, demo, 2)
    with app.app_context():
        study = db.session.get(Study, demo)
        sha = service.current_data(study).sha
        db.session.add(
            Report(
                study_id=demo,
                data_sha256=sha,
                analysis_version=service.analysis.__version__,
                status="running",
                created_at=utcnow() - timedelta(hours=2),
            )
        )
        db.session.commit()
    auth.sign_in(owner_id(app))
    text = page_text(client.get(f"/r/studies/{demo}/report"))
    assert "stopped before it finished" in text
    assert analyses == []


@pytest.mark.slow
@pytest.mark.once
def test_downloads_are_complete_and_self_contained(app, client, demo, analyses, auth):
    """HTML with figures inside, results.json, CSV tables and the reproduction bundle."""
    ids = fill(app, demo, 4)
    auth.sign_in(owner_id(app))
    client.get(f"/r/studies/{demo}/report")
    with app.app_context():
        report = db.session.scalar(sa.select(Report))
        stored = service.results_json(report)
    base = f"/r/studies/{demo}/report/{report.id}"

    page = client.get(f"{base}/report.html")
    assert page.status_code == 200
    assert page.headers["Content-Disposition"].startswith("attachment")
    body = page.get_data(as_text=True)
    assert "<style>" in body and ".claim" in body
    assert not re.search(r'(src|href)="(/|https?:)', body)  # nothing fetched from anywhere
    assert body.count('src="data:image/svg+xml;base64,') >= 5
    assert all(f["claim"] in html.unescape(body) for f in stored["findings"])

    results = client.get(f"{base}/results.json")
    assert json.loads(results.data) == stored
    assert "report_data" not in json.loads(results.data)

    tables = zipfile.ZipFile(io.BytesIO(client.get(f"{base}/tables.zip").data))
    assert {
        "results.json",
        "tests.csv",
        "descriptives.csv",
        "participant_scores.csv",
        "identity_scores.csv",
        "exclusions.csv",
        "findings.csv",
    } <= set(tables.namelist())
    tests_csv = tables.read("tests.csv").decode()
    assert tests_csv.count("\n") == len(stored["tests"]) + 1
    exclusions_csv = tables.read("exclusions.csv").decode()
    assert all(pid in exclusions_csv or f"'{pid}" in exclusions_csv for pid in ids)

    bundle = zipfile.ZipFile(io.BytesIO(client.get(f"{base}/reproduction.zip").data))
    assert set(bundle.namelist()) == {
        "trials.csv",
        "participants.csv",
        "identities.csv",
        "results.json",
        "analysis.R",
        "README.txt",
    }
    assert json.loads(bundle.read("results.json")) == stored
    trials_csv = bundle.read("trials.csv").decode()
    assert trials_csv.startswith("study,participant,list,trial,block,task,identity,condition")
    assert bundle.read("participants.csv").decode().count("\n") == 5
    script = bundle.read("analysis.R").decode()
    assert 'read_table("trials.csv")' in script and "t.test(w$ai, w$real, paired = TRUE)" in script
    assert report.data_sha256 in bundle.read("README.txt").decode()

    png = client.get(f"{base}/figures/paired_trust.png")
    assert png.status_code == 200 and png.mimetype == "image/png"
    assert png.headers["Content-Disposition"].startswith("attachment")
    assert PILImage.open(io.BytesIO(png.data)).format == "PNG"
    svg = client.get(f"{base}/figures/paired_trust.svg")
    cached = client.get(
        f"{base}/figures/paired_trust.svg", headers={"If-None-Match": svg.headers["ETag"]}
    )
    assert cached.status_code == 304
    # A report can be recomputed or deleted: its figures are revalidated on every use.
    for response in (png, svg, cached):
        assert response.headers["Cache-Control"] == "private, no-cache"
    assert client.get(f"{base}/figures/no_such_figure.svg").status_code == 404
    assert client.get(f"{base}/figures/paired_trust.gif").status_code == 404
    assert client.get(f"/r/studies/{demo}/report/{report.id + 1}/results.json").status_code == 404


@pytest.mark.slow
@pytest.mark.once
def test_a_count_of_attention_checks_reports_and_publishes(app, client, demo, analyses, auth):
    """Regression: "2 checks" (a count, not positions) made the report, its HTML and Publish 500."""
    with app.app_context():
        block = db.session.scalar(
            sa.select(Block).where(Block.study_id == demo, Block.task == "rate")
        )
        block.settings = {**block.settings, "attention_checks": 2}
        db.session.commit()
        refreeze(demo)
    fill(app, demo, 4)
    auth.sign_in(owner_id(app))
    page = client.get(f"/r/studies/{demo}/report")
    assert page.status_code == 200
    assert "with 2 attention checks" in page_text(page)
    with app.app_context():
        report = db.session.scalar(sa.select(Report))
    assert client.get(f"/r/studies/{demo}/report/{report.id}/report.html").status_code == 200


@pytest.mark.slow
def test_bundle_refuses_data_that_changed_since_the_report(app, client, demo, analyses, auth):
    """The reproduction bundle must hold the data the report was computed from."""
    fill(app, demo, 2, close=False)
    auth.sign_in(owner_id(app))
    client.get(f"/r/studies/{demo}/report")
    with app.app_context():
        report_id = db.session.scalar(sa.select(Report.id))
    fill(app, demo, 1, close=False, seed=5)
    response = client.get(f"/r/studies/{demo}/report/{report_id}/reproduction.zip")
    assert response.status_code == 409
    assert "New data arrived" in page_text(response)


@pytest.mark.slow
def test_data_hash_covers_trials_participants_and_plan(app, demo, analyses):
    """The hash changes with the plan and with the data, and not with the order of rows."""
    fill(app, demo, 2, close=False)
    with app.app_context():
        study = db.session.get(Study, demo)
        inputs = service.load_inputs(study)
        ids = inputs.identities
        base = service.data_hash(inputs.trials, inputs.participants, None, identities=ids)
        shuffled = service.data_hash(
            inputs.trials.sample(frac=1, random_state=1),
            inputs.participants[::-1],
            None,
            identities=ids,
        )
        planned = service.data_hash(
            inputs.trials, inputs.participants, {"alpha": 0.01}, identities=ids
        )
        fewer = service.data_hash(inputs.trials.iloc[1:], inputs.participants, None, identities=ids)
        # the demo identities have descriptors (the report's moderators): a changed one counts
        assert ids is not None and {"gender", "age_band"} <= set(ids.columns)
        relabelled = ids.assign(gender=ids["gender"].where(ids.index != 0, "x"))
        described = service.data_hash(
            inputs.trials, inputs.participants, None, identities=relabelled
        )
    assert base == shuffled == inputs.data_sha256
    assert len({base, planned, fewer, described}) == 4


def test_methods_paragraph_names_sample_design_rules_tests_and_software():
    """Participants, identities, blocks, counterbalancing, exclusions, tests and corrections."""
    from survey.findings.methods import methods_paragraph

    design = {
        "n_identities": 24,
        "n_lists": 2,
        "assign_by": "completed",
        "blocks": [
            {
                "name": "recognition",
                "task": "match",
                "settings": {
                    "presentation": "sequential",
                    "exposure_ms": 1500,
                    "confidence": True,
                    "attention_checks": [3],
                },
            },
            {
                "name": "impressions",
                "task": "rate",
                "settings": {
                    "scales": [
                        {
                            "key": "trust",
                            "min": 1,
                            "max": 7,
                            "question": "How much do you trust this person?",
                        }
                    ]
                },
            },
        ],
        "preregistration": {"frozen_at": "1 March 2026", "sha256": "ab" * 32},
    }
    results = {
        "plan": {
            "exclusions": {
                "incomplete": True,
                "attention": True,
                "min_median_rt_ms": 300.0,
                "straightlining": True,
            }
        },
        "tests": [
            {"outcome": "trust", "method": "paired_t"},
            {"outcome": "trust", "method": "lmm"},
            {"outcome": "trust", "method": "tost"},
            {"outcome": "choice_real", "method": "binomial"},
        ],
        "correction": "bh",
        "alpha": 0.01,
        "families": [{}, {}, {}],
        "n_identities": 24,
    }
    sample = {
        "recruited": 120,
        "withdrawn": 2,
        "excluded": 7,
        "reasons": {"attention": 5, "incomplete": 3},
        "included": 113,
        "by_list": [{"list": "A", "included": 56}, {"list": "B", "included": 57}],
        "by_device": [{"device": "desktop", "included": 80}, {"device": "mobile", "included": 33}],
        "sources": {"prolific": 120},
    }
    text = methods_paragraph(
        design, results, sample, {"Likeness analysis": "0.1.0", "Python": "3.11.7"}
    )
    assert text.startswith(
        "120 participants took part through Prolific; 2 further participants "
        "withdrew and their data were deleted. 7 participants were excluded "
        "(5 failed an attention check and 3 did not finish; a participant can "
        "meet more than one rule). The analysis includes 113 participants "
        "(list A: 56, list B: 57; desktop: 80, mobile: 33)."
    )
    assert "The stimuli showed 24 identities" in text
    assert (
        "(1) a recognition block (recognition): a headshot (real or AI) and an in-person "
        "probe photo one after the other (the headshot alone for 1500 ms, then the probe photo "
        "until the answer)"
    ) in text
    assert "with 1 attention check; (2) a first-impression block (impressions)" in text
    assert "trust (1–7, “How much do you trust this person?”)" in text
    assert "2 counterbalancing lists" in text and "fewest completed participants" in text
    assert (
        "Following the preregistered rules, participants were excluded if they did not "
        "finish, failed any attention check, had a median response time under 300 ms or gave "
        "the same rating on every rating trial."
    ) in text
    assert "preregistered on 1 March 2026 (SHA-256 abababababababab…)" in text
    assert "linear mixed models of single ratings (REML, Satterthwaite degrees of freedom)" in text
    assert "two one-sided tests (TOST)" in text and "exact binomial tests" in text
    assert "Benjamini-Hochberg method within each family of tests (3 families), at α = 0.01" in text
    assert text.endswith("Analyses ran in Likeness analysis 0.1.0 and Python 3.11.7.")


def test_plain_warnings_cover_small_n_singular_fits_targets_and_balance():
    """The warnings a reader must see, in words: each case and the quiet case."""
    results = {
        "n_participants": 12,
        "n_identities": 8,
        "tests": [
            {
                "outcome": "recognition_accuracy",
                "method": "glmm",
                "singular": True,
                "converged": True,
                "notes": [
                    "singular fit: the (Intercept) variance for participant is estimated at (or "
                    "near) zero (theta = 0)"
                ],
            },
            {
                "outcome": "detection_accuracy",
                "method": "glmm",
                "singular": True,
                "converged": True,
                "notes": [
                    "singular fit: the conditionai effect for identity is perfectly correlated "
                    "with the intercept (correlation +-1)"
                ],
            },
            {"outcome": "trust", "method": "lmm", "singular": False, "converged": False},
        ],
    }
    sample = {"by_list": [{"list": "A", "included": 9}, {"list": "B", "included": 3}]}
    notes = service.plain_warnings(results, sample, {"target_n": 100})
    assert notes == [
        (
            "Only 12 participants are included: estimates are imprecise, and findings need at "
            "least 20 included participants to be published."
        ),
        "The preregistered target was 100 included participants; 12 are included so far.",
        (
            "Only 8 identities were shown: the tests over identities have little power, and the "
            "results may not generalise to other people."
        ),
        (
            "The mixed model of recognition accuracy is singular: the intercept variance across "
            "participants was estimated at zero, so the model is simpler than its formula; read it "
            "beside the participant-level test."
        ),
        # A +-1 correlation is not a zero variance: the note names the cause it has.
        (
            "The mixed model of detection accuracy is singular: the AI-versus-real slope across "
            "identities is perfectly correlated (±1) with the intercept, so the model is simpler "
            "than its formula; read it beside the participant-level test."
        ),
        "The mixed model of trust did not converge: do not rely on it.",
        (
            "The counterbalancing lists are unbalanced (list A: 9, list B: 3 included "
            "participants): each identity was not seen equally often in each condition."
        ),
    ]
    quiet = {"n_participants": 60, "n_identities": 24, "tests": []}
    balanced = {"by_list": [{"list": "A", "included": 30}, {"list": "B", "included": 30}]}
    assert service.plain_warnings(quiet, balanced, None) == []
