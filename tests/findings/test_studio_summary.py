"""The public page's plain-language summary: exact wording for each verdict and direction."""

from __future__ import annotations

import pytest

from survey.findings.studio import sentence, studio_summary

pytestmark = pytest.mark.once


def _results(
    outcome: str,
    estimate: float,
    low: float,
    high: float,
    verdict: str,
    *,
    scale=(1, 7),
    tost=None,
    p_value=0.01,
    p_adjusted=0.01,
    preregistered=True,
    reference=None,
    n=48,
):
    test = {
        "outcome": outcome,
        "family": "primary",
        "level": "participant",
        "method": "paired_t" if reference is None else "one_sample_t",
        "n": n,
        "estimate": estimate,
        "ci_low": low,
        "ci_high": high,
        "p_value": p_value,
        "p_adjusted": p_adjusted,
        "correction": "holm",
    }
    if scale and outcome not in (
        "recognition_accuracy",
        "choice_real",
        "detection_accuracy",
        "d_prime",
        "criterion",
        "detection_d_prime",
    ):
        test["scale"] = list(scale)
    if reference is not None:
        test["reference_value"] = reference
    tests = [test]
    supported = [0]
    if tost:
        tests.append(
            {
                "outcome": outcome,
                "method": "tost",
                "level": "participant",
                "bound_low": tost[0],
                "bound_high": tost[1],
                "p_value": 0.01,
                "p_adjusted": 0.01,
                "correction": "holm",
                "family": "equivalence",
            }
        )
        supported.append(1)
    finding = {
        "outcome": outcome,
        "verdict": verdict,
        "preregistered": preregistered,
        "claim": "the researcher's own wording",
        "supported_by": supported,
    }
    return {"tests": tests, "findings": [finding], "n_participants": n, "n_identities": 8}


def _say(results):
    return sentence(results, results["findings"][0])


def test_a_difference_lower_and_higher_in_the_report_units():
    lower = _results("trust", -0.4, -0.6, -0.2, "difference")
    assert _say(lower) == (
        "People trusted AI headshots less than real photographs: 0.40 points "
        "lower on the 1–7 scale (95% CI 0.20 to 0.60), 48 participants."
    )
    higher = _results("trust", 0.31, 0.05, 0.57, "difference")
    assert _say(higher) == (
        "People trusted AI headshots more than real photographs: 0.31 points "
        "higher on the 1–7 scale (95% CI 0.05 to 0.57), 48 participants."
    )
    scale = _results("professional", -0.25, -0.4, -0.1, "difference", scale=(1, 5))
    assert _say(scale) == (
        "People rated AI headshots lower than real photographs on the "
        "professional scale: 0.25 points lower on the 1–5 scale (95% CI 0.10 "
        "to 0.40), 48 participants."
    )
    accuracy = _results("recognition_accuracy", -0.052, -0.083, -0.021, "difference")
    assert _say(accuracy) == (
        "People were recognised less accurately from AI headshots than "
        "from real photographs: 5.2 percentage points lower (95% CI 2.1 "
        "to 8.3), 48 participants."
    )


def test_a_difference_from_chance_says_above_or_below_it():
    above = _results("choice_real", 0.12, 0.05, 0.19, "difference", reference=0.5)
    assert _say(above) == (
        "People chose the real photograph over the AI headshot more often "
        "than chance: 12.0 percentage points above the chance level of 50% "
        "(95% CI 5.0 to 19.0), 48 participants."
    )
    below = _results("detection_accuracy", -0.08, -0.15, -0.01, "difference", reference=0.5)
    assert _say(below).startswith(
        "People told AI headshots from real photographs worse than "
        "chance: 8.0 percentage points below the chance level of 50% "
        "(95% CI 1.0 to 15.0)"
    )


def test_an_unadjusted_interval_is_labelled_and_one_reaching_zero_is_given_signed():
    # Holm changed p, so the test's own interval is the unadjusted one: it says so.
    unadjusted = _results("trust", -0.4, -0.6, -0.2, "difference", p_value=0.004, p_adjusted=0.012)
    assert "(unadjusted 95% CI 0.20 to 0.60)" in _say(unadjusted)
    # A difference whose (unadjusted) interval still reaches zero is not turned into magnitudes.
    reaching = _results("trust", -0.4, -0.8, 0.02, "difference", p_value=0.04, p_adjusted=0.04)
    assert _say(reaching) == (
        "People trusted AI headshots less than real photographs: the "
        "difference, AI minus real, was -0.40 points on the 1–7 scale "
        "(95% CI -0.80 to 0.02), 48 participants."
    )


def test_no_reliable_difference_names_the_bounds_and_never_claims_zero():
    results = _results(
        "trust", 0.05, -0.1, 0.2, "no_difference", tost=(-0.3, 0.3), p_value=0.5, p_adjusted=0.5
    )
    assert _say(results) == (
        "There was no reliable difference between how much people trusted AI headshots and real "
        "photographs: the difference, AI minus real, was 0.05 points on the 1–7 scale (95% CI "
        "-0.10 to 0.20), and an equivalence test showed that any difference lies within ±0.30 "
        "points on the 1–7 scale, the range the researchers set in advance as too small to "
        "matter. 48 participants."
    )
    cannot = studio_summary(results).cannot
    assert any("not mean" in c or "exactly zero" in c for c in cannot)


def test_inconclusive_says_it_cannot_tell_and_is_not_evidence_of_no_difference():
    results = _results(
        "recognition_accuracy", -0.01, -0.05, 0.03, "inconclusive", p_value=0.6, p_adjusted=0.6
    )
    assert _say(results) == (
        "The study cannot say whether there is a difference between how accurately people were "
        "recognised from AI headshots and from real photographs: the difference, AI minus real, "
        "was -1.0 percentage points (95% CI -5.0 to 3.0). 48 participants. This is not evidence "
        "that there is no difference."
    )
    # An interval that excludes zero but a corrected p that is not below alpha: said plainly.
    corrected = _results("trust", -0.3, -0.55, -0.05, "inconclusive", p_value=0.02, p_adjusted=0.08)
    text = _say(corrected)
    assert "(unadjusted 95% CI -0.55 to -0.05)" in text
    assert "after correcting for the number of tests the difference is not reliable" in text
    assert "trusted AI headshots less" not in text
    summary = studio_summary(results)
    assert any("inconclusive result is not evidence of no difference" in c for c in summary.cannot)


def test_an_untested_outcome_and_the_limits_list():
    results = _results("trust", -0.4, -0.6, -0.2, "difference", preregistered=False)
    results["findings"].append(
        {
            "outcome": "criterion",
            "verdict": "inconclusive",
            "preregistered": False,
            "supported_by": [],
            "claim": "could not be tested",
        }
    )
    summary = studio_summary(results)
    assert summary.sentences[1]["text"] == (
        "The study could not test the response criterion (c) with AI headshots and with real "
        "photographs, so it says nothing about it."
    )
    joined = " ".join(summary.cannot)
    assert "8 people's faces shown to 48 participants" in joined
    assert "bookings, sales or hires" in joined
    assert "exploratory results" in joined
    assert [s["verdict"] for s in summary.sentences] == ["difference", "inconclusive"]


@pytest.mark.parametrize("verdict", ["difference", "no_difference", "inconclusive"])
def test_the_wording_of_one_verdict_never_appears_in_another(verdict):
    estimate, low, high = {
        "difference": (-0.4, -0.6, -0.2),
        "no_difference": (0.0, -0.1, 0.1),
        "inconclusive": (-0.1, -0.4, 0.2),
    }[verdict]
    text = _say(_results("trust", estimate, low, high, verdict, tost=(-0.3, 0.3)))
    assert ("less than real photographs:" in text) == (verdict == "difference")
    assert ("no reliable difference" in text) == (verdict == "no_difference")
    assert ("cannot say" in text) == (verdict == "inconclusive")


def test_the_public_page_shows_each_sentence_in_its_own_section(app, client, demo, analyses, auth):
    import sqlalchemy as sa

    from survey.extensions import db
    from survey.findings import service
    from survey.models import Report
    from tests.findings.support import (
        fill,
        owner_id,
        page_text,
        publish_findings,
    )

    fill(app, demo, 21, seed=4)
    auth.sign_in(owner_id(app))
    assert client.get(f"/r/studies/{demo}/report").status_code == 200
    assert publish_findings(client, demo).status_code == 302
    with app.app_context():
        report = db.session.scalar(sa.select(Report).where(Report.published_at.is_not(None)))
        results = service.public_results(report)
    page = client.get("/f/demo")
    text = page_text(page)
    html = page.get_data(as_text=True)
    assert 'aria-labelledby="studio-title"' in html
    summary = studio_summary(results)
    assert len(summary.sentences) == len(results["findings"]) >= 3
    for item in summary.sentences + [{"text": c} for c in summary.cannot]:
        assert item["text"] in text
    # The summary comes before the researcher's claims, and is not the embed's.
    assert text.index("In plain words") < text.index("What the study found")
    assert "What this study cannot tell you" not in page_text(client.get("/f/demo/embed"))


def test_the_embed_shows_preregistered_findings_first_and_at_most_three():
    from survey.findings.studio import StudioSummary, embed_sentences

    summary = StudioSummary(
        sentences=[
            {
                "outcome": f"o{i}",
                "preregistered": i in (2, 4),
                "verdict": "difference",
                "text": str(i),
            }
            for i in range(6)
        ]
    )
    assert [s["outcome"] for s in embed_sentences(summary)] == ["o2", "o4", "o0"]
    assert embed_sentences(StudioSummary()) == []


def test_the_bayes_factor_is_added_to_no_difference_and_inconclusive_sentences():
    import math

    results = _results(
        "trust", 0.05, -0.1, 0.2, "no_difference", tost=(-0.3, 0.3), p_value=0.5, p_adjusted=0.5
    )
    results["tests"][0].update(log_bf10=-math.log(6.0), bf_rscale=2**0.5 / 2)
    assert _say(results).endswith(
        "48 participants. A Bayes factor adds that the data are 6 times more likely under no "
        "difference than under a difference (it depends on the difference expected in advance: "
        "half the prior weight on standardised differences below r = 0.707)."
    )
    middle = _results("choice_real", 0.01, -0.02, 0.04, "inconclusive", reference=0.5)
    middle["tests"][0].update(log_bf10=math.log(0.5), bf_rscale=1.0)
    assert _say(middle).endswith(
        "This is not evidence that there is no difference. A Bayes factor is inconclusive: the "
        "data are about as likely under no difference from chance as under a difference from "
        "chance (it depends on the difference expected in advance: half the prior weight on "
        "standardised differences below r = 1)."
    )
    shown = _results("trust", -0.4, -0.5, -0.3, "difference")
    shown["tests"][0].update(log_bf10=30.0, bf_rscale=1.0)
    assert "Bayes" not in _say(shown)


def test_report_page_facts_and_test_rows_show_the_bayes_factor():
    import math

    from survey.findings.methods import _tests_sentence
    from survey.findings.present import claim_facts, test_row

    results = _results("trust", 0.05, -0.1, 0.2, "inconclusive", p_value=0.5, p_adjusted=0.5)
    results["tests"][0].update(log_bf10=-math.log(6.2), bf_rscale=0.5, statistic=0.6, df=47.0)
    facts = claim_facts(results, results["findings"][0])
    assert facts.bayes == (
        "Bayes factor BF01 = 6.20 (JZS prior, r = 0.5): the data are 6.2 times more likely "
        "under no difference than under a difference"
    )
    assert test_row(results, results["tests"][0])["bayes"] == "BF01 = 6.20 (r = 0.5)"
    assert "Cauchy prior on the standardised difference with scale r = 0.5" in (
        _tests_sentence(results)
    )
    assert "95% within-participant confidence interval (Cousineau, 2005, with Morey's 2008" in (
        _tests_sentence(results)
    )
    plain = _results("trust", 0.05, -0.1, 0.2, "inconclusive")
    assert claim_facts(plain, plain["findings"][0]).bayes == ""
    assert test_row(plain, plain["tests"][0])["bayes"] == ""
    assert "Bayes" not in _tests_sentence(plain)
