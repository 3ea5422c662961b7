"""The findings guard: wording follows the corrected test and the equivalence test, nothing else."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analysis.findings import (
    ci_label,
    corrected_p,
    finding,
    findings_for,
    format_p,
    untested_finding,
)


def trust_test(**changes) -> dict:
    """A participant-level paired t-test of trust, as in results.json."""
    test = {
        "outcome": "trust",
        "method": "paired_t",
        "level": "participant",
        "family": "primary",
        "estimate": -0.376,
        "ci_low": -0.469,
        "ci_high": -0.283,
        "confidence": 0.95,
        "statistic": -8.04,
        "df": 112.0,
        "p_value": 1e-12,
        "p_adjusted": 4e-12,
        "correction": "holm",
        "n": 113,
        "scale": [1, 7],
        "preregistered": True,
    }
    test.update(changes)
    return test


def trust_tost(**changes) -> dict:
    """The TOST of trust against +-0.3."""
    test = {
        "outcome": "trust",
        "method": "tost",
        "level": "participant",
        "family": "equivalence",
        "estimate": -0.02,
        "ci_low": -0.1,
        "ci_high": 0.06,
        "statistic": 4.1,
        "df": 112.0,
        "p_value": 0.001,
        "p_adjusted": 0.002,
        "correction": "holm",
        "n": 113,
        "bound_low": -0.3,
        "bound_high": 0.3,
    }
    test.update(changes)
    return test


def test_difference_sentence_names_estimate_ci_test_and_n():
    result = finding(trust_test())
    assert result["verdict"] == "difference"
    assert result["claim"] == (
        "Preregistered: AI headshots were trusted less than real photographs by 0.38 points on "
        "the 1–7 scale (AI minus real = -0.38, unadjusted 95% CI -0.47 to -0.28; paired t-test, "
        "t(112) = -8.04, Holm-adjusted p < 0.001; N = 113 participants)."
    )


def test_raw_p_below_alpha_is_not_enough():
    result = finding(
        trust_test(estimate=-0.1, ci_low=-0.19, ci_high=-0.01, p_value=0.03, p_adjusted=0.09)
    )
    assert result["verdict"] == "inconclusive"
    assert "trusted less" not in result["claim"]
    assert "Holm-adjusted p = 0.09" in result["claim"]
    assert "no equivalence bounds were preregistered" in result["claim"]


def test_p_exactly_alpha_is_not_significant():
    assert finding(trust_test(p_adjusted=0.05), alpha=0.05)["verdict"] == "inconclusive"


def test_no_difference_needs_a_significant_tost():
    test = trust_test(estimate=-0.02, ci_low=-0.12, ci_high=0.08, p_value=0.7, p_adjusted=0.7)
    result = finding(test, equivalence=trust_tost())
    assert result["verdict"] == "no_difference"
    assert result["claim"].startswith(
        "Preregistered: There was no reliable difference in trust between AI headshots and real "
        "photographs: any difference lies within ±0.30 points on the 1–7 scale (AI minus real = "
        "-0.02 points on the 1–7 scale, 95% CI -0.12 to 0.08; paired t-test, t(112) = -8.04, "
        "Holm-adjusted p = 0.7; equivalence test (TOST) against ±0.30 points on the 1–7 scale, "
        "Holm-adjusted p = 0.002; N = 113 participants)."
    )


def test_non_significant_tost_is_inconclusive():
    test = trust_test(estimate=-0.1, ci_low=-0.3, ci_high=0.1, p_value=0.3, p_adjusted=0.3)
    result = finding(test, equivalence=trust_tost(p_value=0.2, p_adjusted=0.2))
    assert result["verdict"] == "inconclusive"
    assert result["claim"].endswith(
        "equivalence within ±0.30 points on the 1–7 scale was not shown either."
    )
    assert "no reliable difference" not in result["claim"]


def test_tost_uses_its_adjusted_p():
    test = trust_test(estimate=-0.02, p_value=0.7, p_adjusted=0.7)
    result = finding(test, equivalence=trust_tost(p_value=0.03, p_adjusted=0.06))
    assert result["verdict"] == "inconclusive"


def test_significant_difference_inside_the_bounds_says_so():
    result = finding(trust_test(estimate=-0.1), equivalence=trust_tost())
    assert result["verdict"] == "difference"
    assert "lies within the preregistered equivalence bounds (±0.30" in result["claim"]


def test_exploratory_prefix():
    assert finding(trust_test(preregistered=False))["claim"].startswith("Exploratory: ")


@pytest.mark.parametrize(
    "direction, estimate, supported, words",
    [
        ("less", -0.38, True, "This supports the preregistered hypothesis"),
        ("greater", -0.38, False, "runs opposite to the preregistered hypothesis"),
        ("two-sided", 0.38, True, "This supports the preregistered hypothesis"),
    ],
)
def test_hypothesis_direction(direction, estimate, supported, words):
    hypothesis = {"outcome": "trust", "direction": direction, "text": "trust differs"}
    result = finding(
        trust_test(estimate=estimate, ci_low=estimate - 0.1, ci_high=estimate + 0.1),
        hypothesis=hypothesis,
    )
    assert result["hypothesis_supported"] is supported
    assert words in result["claim"] and "(trust differs)" in result["claim"]


def test_hypothesis_not_supported_without_a_difference():
    result = finding(
        trust_test(p_adjusted=0.2),
        hypothesis={"outcome": "trust", "direction": "less", "text": "lower trust"},
    )
    assert result["hypothesis_supported"] is False
    assert "The preregistered hypothesis (lower trust) was not supported." in result["claim"]


def test_positive_estimate_reads_more():
    claim = finding(trust_test(estimate=0.2, ci_low=0.1, ci_high=0.3))["claim"]
    assert "AI headshots were trusted more than real photographs by 0.20 points" in claim


@pytest.mark.parametrize(
    "test, phrase",
    [
        (
            {
                "outcome": "recognition_accuracy",
                "estimate": -0.104,
                "ci_low": -0.133,
                "ci_high": -0.075,
            },
            (
                "People were recognised less accurately from AI headshots"
                " than from real photographs, by 10.4 percentage points"
            ),
        ),
        (
            {"outcome": "d_prime", "estimate": -0.55, "ci_low": -0.71, "ci_high": -0.39},
            (
                "Recognition sensitivity (d') was lower with AI headshots"
                " than with real photographs by 0.55"
            ),
        ),
        (
            {"outcome": "criterion", "estimate": 0.31, "ci_low": 0.22, "ci_high": 0.4},
            "answered 'same person' more cautiously",
        ),
        (
            {
                "outcome": "professional",
                "estimate": -0.44,
                "ci_low": -0.5,
                "ci_high": -0.3,
                "scale": [1, 5],
            },
            (
                "rated lower than real photographs on the professional scale,"
                " by 0.44 points on the 1–5 scale"
            ),
        ),
        (
            {
                "outcome": "choice_real",
                "method": "one_sample_t",
                "estimate": 0.119,
                "mean": 0.619,
                "ci_low": 0.091,
                "ci_high": 0.147,
                "reference_value": 0.5,
            },
            (
                "chose the real photograph over the AI headshot in 61.9% of pairs,"
                " more often than chance (50%) by 11.9 percentage points"
                " (difference from chance (50%) = 11.9, unadjusted 95% CI 9.1 to 14.7;"
                " one-sample t-test against 50%"
            ),
        ),
        (
            {
                "outcome": "detection_accuracy",
                "method": "one_sample_t",
                "estimate": -0.018,
                "mean": 0.482,
                "ci_low": -0.03,
                "ci_high": -0.006,
                "reference_value": 0.5,
            },
            "with 48.2% accuracy, worse than chance (50%) by 1.8 percentage points",
        ),
        (
            {
                "outcome": "detection_d_prime",
                "method": "one_sample_t",
                "estimate": 0.46,
                "ci_low": 0.3,
                "ci_high": 0.6,
                "reference_value": 0.0,
            },
            "could tell AI headshots from real photographs (d' = 0.46, above 0)",
        ),
        (
            {
                "outcome": "recognition_accuracy",
                "method": "glmm",
                "level": "trial",
                "estimate": -0.573,
                "ci_low": -0.75,
                "ci_high": -0.39,
                "statistic": -6.27,
                "df": None,
                "n": 2712,
            },
            (
                "recognised correctly less often than with real photographs:"
                " the log-odds of a correct answer were lower by 0.57 (odds ratio 0.56)"
                " (AI minus real = -0.57, unadjusted 95% CI -0.75 to -0.39;"
                " logistic mixed model with crossed random effects of participants and identities,"
                " z = -6.27, Holm-adjusted p < 0.001; N = 2712 trials)"
            ),
        ),
    ],
)
def test_wording_per_outcome(test, phrase):
    base = trust_test()
    base.pop("scale")
    assert phrase in finding({**base, **test})["claim"]


def test_one_sample_inconclusive_says_from_chance():
    test = trust_test(
        outcome="choice_real",
        method="one_sample_t",
        estimate=0.01,
        ci_low=-0.03,
        ci_high=0.05,
        p_value=0.6,
        p_adjusted=0.6,
        reference_value=0.5,
    )
    claim = finding(test)["claim"]
    assert (
        "neither show a difference in share of choices for the real photograph from chance "
        "(50%)" in claim
    )


def test_p_is_never_rounded_across_alpha():
    claim = finding(trust_test(p_adjusted=0.04996))["claim"]
    assert "Holm-adjusted p = 0.04996" in claim
    claim = finding(trust_test(p_adjusted=0.05004))["claim"]
    assert "Holm-adjusted p = 0.05004" in claim and "(inconclusive)" in claim


def test_missing_p_adjusted_with_a_correction_is_refused():
    test = trust_test()
    del test["p_adjusted"]
    with pytest.raises(ValueError, match="has no p_adjusted"):
        finding(test)


def test_uncorrected_test_uses_p_value():
    test = trust_test(correction="none", p_adjusted=None, p_value=0.01)
    assert corrected_p(test) == 0.01
    assert "; paired t-test, t(112) = -8.04, p = 0.01;" in finding(test)["claim"]


def test_missing_p_is_inconclusive_not_an_error():
    result = finding(trust_test(p_value=None, p_adjusted=None))
    assert result["verdict"] == "inconclusive"
    assert "the test could not be computed" in result["claim"]


@pytest.mark.parametrize(
    "equivalence, message",
    [
        (trust_tost(outcome="professional"), "must be the TOST of 'trust'"),
        (trust_test(), "must be the TOST of 'trust'"),
        (trust_tost(level="identity"), "differs from the test's"),
    ],
)
def test_wrong_equivalence_test_is_refused(equivalence, message):
    with pytest.raises(ValueError, match=message):
        finding(trust_test(), equivalence=equivalence)


def test_bad_alpha_and_estimate():
    with pytest.raises(ValueError, match="alpha"):
        finding(trust_test(), alpha=1.5)
    with pytest.raises(ValueError, match="no finite estimate"):
        finding(trust_test(estimate=float("nan")))


def test_missing_ci_is_said():
    claim = finding(trust_test(ci_low=None, ci_high=None))["claim"]
    assert "95% CI not available" in claim


def test_findings_for_links_main_test_and_tost():
    tests = [
        trust_test(),
        trust_test(family="participant_wilcoxon", method="wilcoxon"),
        trust_tost(),
        trust_test(outcome="professional", family="secondary", preregistered=False),
    ]
    found = findings_for(tests, 0.05, [{"outcome": "trust", "direction": "less", "text": "t"}])
    assert [f["supported_by"] for f in found] == [[0, 2], [3]]
    assert found[0]["hypothesis_supported"] is True
    assert found[1]["hypothesis_supported"] is None


finite = st.floats(min_value=-5, max_value=5, allow_nan=False).filter(lambda v: abs(v) > 1e-3)
p_values = st.floats(min_value=0, max_value=1, allow_nan=False)


@given(
    estimate=finite,
    p_raw=p_values,
    p_adjusted=p_values,
    tost_p=st.none() | p_values,
    alpha=st.sampled_from([0.01, 0.05, 0.1]),
)
def test_verdict_follows_the_statistics_only(estimate, p_raw, p_adjusted, tost_p, alpha):
    """Whatever the numbers, the verdict is fixed by corrected p, TOST p and alpha alone."""
    test = trust_test(
        estimate=estimate,
        ci_low=estimate - 0.1,
        ci_high=estimate + 0.1,
        p_value=min(p_raw, p_adjusted),
        p_adjusted=p_adjusted,
    )
    tost = None if tost_p is None else trust_tost(p_value=tost_p, p_adjusted=tost_p)
    result = finding(test, alpha, tost)
    if p_adjusted < alpha:
        expected = "difference"
    elif tost_p is not None and tost_p < alpha:
        expected = "no_difference"
    else:
        expected = "inconclusive"
    assert result["verdict"] == expected
    claim = result["claim"]
    said_less = "trusted less" in claim
    said_more = "trusted more" in claim
    assert (said_less or said_more) == (expected == "difference")
    if expected == "difference":
        assert said_less == (estimate < 0)
    assert ("no reliable difference" in claim) == (expected == "no_difference")
    assert "N = 113 participants" in claim and "95% CI" in claim and "paired t-test" in claim
    shown = re.search(r"Holm-adjusted p (=|<) ([0-9.e-]+)", claim)
    assert shown is not None
    if shown.group(1) == "=":
        assert (float(shown.group(2)) < alpha) == (p_adjusted < alpha)


@pytest.mark.parametrize(
    "p, alpha, text",
    [
        (0.0004, 0.05, "< 0.001"),
        (0.012, 0.05, "= 0.012"),
        (0.04996, 0.05, "= 0.04996"),
        (0.0504, 0.05, "= 0.0504"),
        (0.05, 0.05, "= 0.05"),
        (0.0096, 0.01, "= 0.0096"),
        (0.5, 0.05, "= 0.5"),
    ],
)
def test_format_p(p, alpha, text):
    assert format_p(p, alpha) == text


def test_an_interval_beside_an_adjusted_p_says_it_is_unadjusted():
    """The CI is the test's own: 'unadjusted' whenever the correction changed p, else plain."""
    adjusted = finding(trust_test(p_value=1e-12, p_adjusted=4e-12))["claim"]
    assert "unadjusted 95% CI -0.47 to -0.28; paired t-test" in adjusted
    alone = finding(trust_test(p_value=1e-12, p_adjusted=1e-12))["claim"]
    assert " 95% CI -0.47 to -0.28" in alone and "unadjusted" not in alone
    uncorrected = finding(trust_test(correction="none", p_adjusted=None))["claim"]
    assert "unadjusted" not in uncorrected
    assert ci_label(trust_tost(confidence=0.9)) == "unadjusted 90% CI"
    assert ci_label(trust_tost(confidence=0.9, p_adjusted=0.001)) == "90% CI"


def test_inconclusive_beside_an_interval_without_zero_says_why():
    """Raw p below alpha, adjusted p above it: the verdict and the interval disagree, in words."""
    claim = finding(
        trust_test(estimate=-0.1, ci_low=-0.19, ci_high=-0.01, p_value=0.03, p_adjusted=0.09)
    )["claim"]
    assert (
        "the unadjusted 95% CI excludes zero (p = 0.03 before correction), but after "
        "correcting for the other tests of its family the Holm-adjusted p = 0.09 is not below "
        "α = 0.05, so no difference is claimed"
    ) in claim
    plain = finding(
        trust_test(estimate=-0.1, ci_low=-0.3, ci_high=0.1, p_value=0.3, p_adjusted=0.6)
    )["claim"]
    assert "excludes zero" not in plain


def test_a_difference_beside_an_interval_with_zero_says_why():
    """A p below alpha from a test that does not use the interval (here a Wilcoxon test)
    beside an interval that includes zero: the claim says why, in words."""
    test = trust_test(
        method="wilcoxon", estimate=-0.1, ci_low=-0.2, ci_high=0.01, p_value=0.01, p_adjusted=0.02
    )
    result = finding(test)
    assert result["verdict"] == "difference"
    assert (
        "Its unadjusted 95% CI still includes zero: the p-value of the Wilcoxon signed-rank "
        "test is not computed from this interval"
    ) in result["claim"]
    # An interval that excludes zero needs no such sentence.
    assert "still includes" not in finding(trust_test())["claim"]


def test_one_label_one_colon_and_no_doubled_full_stop():
    """'Exploratory (inconclusive):' not 'Exploratory: Inconclusive:'; a hypothesis's own full
    stop is not doubled."""
    hypothesis = {"outcome": "trust", "direction": "less", "text": "AI is trusted less."}
    claims = [
        finding(trust_test(p_adjusted=0.4, preregistered=False), hypothesis=hypothesis),
        finding(trust_test(), hypothesis=hypothesis),
        untested_finding("trust", "no data.", False, hypothesis),
    ]
    assert claims[0]["claim"].startswith("Exploratory (inconclusive): the data neither show")
    assert claims[2]["claim"].startswith("Exploratory (inconclusive): trust could not be tested")
    for result in claims:
        assert "Inconclusive:" not in result["claim"]
        assert not re.search(r"(?<!\.)\.\.(?!\.)|\.\)\.|[;,:] ?[;,:]", result["claim"]), result[
            "claim"
        ]
    assert "(AI is trusted less)" in claims[1]["claim"]
