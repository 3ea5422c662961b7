"""Closed-form tests against R (reference.json) and against scipy / statsmodels."""

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.weightstats import ttost_paired

from analysis import stats
from analysis.exclusions import included_trials, screen_participants
from analysis.outcomes import FIXED_OUTCOMES, rating_outcome, unit_scores

R_TOL = 1e-6  # closed-form tests: t, p, CI and effect sizes to 1e-6 (relative)


@pytest.fixture(scope="module")
def wide(sim):
    """Participant means per condition (complete cases) of each R-checked outcome."""
    screen = screen_participants(sim.trials, sim.participants)
    kept = included_trials(sim.trials, screen)
    outcomes = {
        "trust_paired": rating_outcome("trust"),
        "accuracy_paired": FIXED_OUTCOMES["recognition_accuracy"],
        "dprime_paired": FIXED_OUTCOMES["d_prime"],
        "criterion_paired": FIXED_OUTCOMES["criterion"],
        "choice_real": FIXED_OUTCOMES["choice_real"],
    }
    out = {}
    for key, outcome in outcomes.items():
        scores = unit_scores(kept, outcome, "participant")
        out[key] = (
            scores["value"].to_numpy()
            if key == "choice_real"
            else stats.paired_wide(scores, "value", "condition", "unit")
        )
    return out


PAIRED = ["trust_paired", "accuracy_paired", "dprime_paired", "criterion_paired"]


@pytest.mark.parametrize("key", PAIRED)
def test_paired_t_matches_r(wide, reference, key):
    # R: t.test(ai, real, paired = TRUE); d_z = mean(ai - real) / sd(ai - real)
    expected = reference[key]
    w = wide[key]
    row = stats.paired_t(w["ai"], w["real"]).iloc[0]
    assert row["estimate"] == pytest.approx(expected["estimate"], rel=R_TOL)
    assert row["ci_low"] == pytest.approx(expected["ci_low"], rel=R_TOL)
    assert row["ci_high"] == pytest.approx(expected["ci_high"], rel=R_TOL)
    assert row["statistic"] == pytest.approx(expected["t"], rel=R_TOL)
    assert row["df"] == expected["df"]
    assert row["p_value"] == pytest.approx(expected["p"], rel=R_TOL)
    assert row["effect_size"] == pytest.approx(expected["d_z"], rel=R_TOL)
    assert row["n"] == expected["n"] == 113


@pytest.mark.parametrize("key", PAIRED)
def test_wilcoxon_matches_r(wide, reference, key):
    # R: wilcox.test(ai, real, paired = TRUE, exact = FALSE, correct = FALSE)
    expected = reference[key]
    w = wide[key]
    row = stats.wilcoxon(w["ai"], w["real"]).iloc[0]
    assert row["statistic"] == expected["wilcoxon_V"]
    assert row["p_value"] == pytest.approx(expected["wilcoxon_p"], rel=R_TOL)


@pytest.mark.parametrize("key", PAIRED)
def test_wilcoxon_matches_scipy(wide, key):
    w = wide[key]
    row = stats.wilcoxon(w["ai"], w["real"]).iloc[0]
    scipy = sps.wilcoxon(
        w["ai"], w["real"], method="approx", correction=False, zero_method="wilcox"
    )
    assert row["p_value"] == pytest.approx(scipy.pvalue, rel=1e-12)
    assert min(row["r_plus"], row["r_minus"]) == scipy.statistic


@pytest.mark.parametrize(
    "key, means",
    [
        ("trust_paired", "trust_means"),
        ("accuracy_paired", "accuracy_means"),
        ("dprime_paired", "dprime_means"),
    ],
)
def test_condition_means_match_r(wide, reference, key, means):
    # R: mean(m[, "real"]), mean(m[, "ai"]) over participant means (complete cases)
    w = wide[key]
    assert w["real"].mean() == pytest.approx(reference[means]["real"], rel=R_TOL)
    assert w["ai"].mean() == pytest.approx(reference[means]["ai"], rel=R_TOL)


def test_choice_share_matches_r(wide, reference):
    # R: t.test(share, mu = 0.5); R's interval is of the mean, ours of mean - 0.5
    expected = reference["choice_real"]
    row = stats.one_sample_t(wide["choice_real"], mu=0.5).iloc[0]
    assert row["mean"] == pytest.approx(expected["mean"], rel=R_TOL)
    assert row["estimate"] == pytest.approx(expected["mean"] - 0.5, rel=R_TOL)
    assert row["statistic"] == pytest.approx(expected["t"], rel=R_TOL)
    assert row["df"] == expected["df"]
    assert row["p_value"] == pytest.approx(expected["p"], rel=R_TOL)
    assert row["ci_low"] + 0.5 == pytest.approx(expected["ci_low"], rel=R_TOL)
    assert row["ci_high"] + 0.5 == pytest.approx(expected["ci_high"], rel=R_TOL)


@pytest.mark.parametrize("key", PAIRED)
def test_paired_t_matches_scipy(wide, key):
    w = wide[key]
    row = stats.paired_t(w["ai"], w["real"], confidence=0.9).iloc[0]
    scipy = sps.ttest_rel(w["ai"], w["real"])
    ci = scipy.confidence_interval(0.9)
    assert row["statistic"] == pytest.approx(scipy.statistic, rel=1e-12)
    assert row["p_value"] == pytest.approx(scipy.pvalue, rel=1e-10)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-12)


def test_one_sample_t_matches_scipy():
    x = np.array([0.55, 0.61, 0.48, 0.7, 0.66, 0.52, 0.59])
    row = stats.one_sample_t(x, mu=0.5).iloc[0]
    scipy = sps.ttest_1samp(x, 0.5)
    ci = scipy.confidence_interval(0.95)
    assert row["statistic"] == pytest.approx(scipy.statistic, rel=1e-12)
    assert row["p_value"] == pytest.approx(scipy.pvalue, rel=1e-10)
    assert row["ci_low"] + 0.5 == pytest.approx(ci.low, rel=1e-12)
    assert row["effect_size"] == pytest.approx((x.mean() - 0.5) / x.std(ddof=1), rel=1e-12)


def test_paired_t_drops_incomplete_pairs():
    row = stats.paired_t([1.0, 2.0, np.nan, 4.0], [0.5, 1.0, 3.0, np.nan]).iloc[0]
    assert row["n"] == 2 and row["estimate"] == pytest.approx(0.75)


def test_paired_t_errors():
    with pytest.raises(ValueError, match="at least 2 observations, got 1"):
        stats.paired_t([1.0], [2.0])
    with pytest.raises(ValueError, match="essentially constant"):
        stats.paired_t([2.0, 3.0, 4.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="differ in length"):
        stats.paired_t([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="infinite"):
        stats.paired_t([1.0, np.inf, 2.0], [1.0, 2.0, 3.0])


def test_wilcoxon_small_example_by_hand():
    # d = 3, -1, 2, 0, 2: the zero is dropped; |d| ranks 4, 1, 2.5, 2.5 -> V = 9, R- = 1
    row = stats.wilcoxon([4, 1, 5, 3, 6], [1, 2, 3, 3, 4]).iloc[0]
    assert row["statistic"] == 9 and row["r_minus"] == 1
    assert row["n"] == 4 and row["n_zero"] == 1
    assert row["effect_size"] == pytest.approx((9 - 1) / 10)
    # sigma^2 = 4*5*9/24 - (2^3 - 2)/48 = 7.375; z = (9 - 5) / sqrt(7.375)
    assert row["z"] == pytest.approx(4 / np.sqrt(7.375))
    assert row["p_value"] == pytest.approx(2 * sps.norm.sf(4 / np.sqrt(7.375)))
    # Hodges-Lehmann: median of the Walsh averages of 3, -1, 2, 2
    walsh = [3, 1, 2.5, 2.5, -1, 0.5, 0.5, 2, 2, 2]
    assert row["estimate"] == pytest.approx(np.median(walsh))


def test_wilcoxon_one_sample_against_mu():
    x = np.array([0.6, 0.7, 0.45, 0.8, 0.55, 0.65])
    row = stats.wilcoxon(x, mu=0.5).iloc[0]
    scipy = sps.wilcoxon(x - 0.5, method="approx", correction=False)
    assert row["p_value"] == pytest.approx(scipy.pvalue, rel=1e-12)


def test_wilcoxon_hodges_lehmann_interval_contains_estimate():
    rng = np.random.default_rng(1)
    x, y = rng.normal(0.3, 1, 40), rng.normal(0, 1, 40)
    row = stats.wilcoxon(x, y).iloc[0]
    assert row["ci_low"] < row["estimate"] < row["ci_high"]


def test_wilcoxon_errors():
    with pytest.raises(ValueError, match="every difference is zero"):
        stats.wilcoxon([1.0, 2.0], [1.0, 2.0])


def test_binomial_matches_r_documentation_example():
    # R: binom.test(682, 925, p = 0.75) -> p-value = 0.3825, 95% CI 0.7076683 0.7654066
    row = stats.binomial(682, 925, p=0.75).iloc[0]
    assert row["p_value"] == pytest.approx(0.3825, abs=5e-5)
    assert row["ci_low"] + 0.75 == pytest.approx(0.7076683, abs=5e-8)
    assert row["ci_high"] + 0.75 == pytest.approx(0.7654066, abs=5e-8)
    assert row["estimate"] == pytest.approx(682 / 925 - 0.75)


def test_binomial_by_hand():
    # P(X >= 7) + P(X <= 3) for Binomial(10, 0.5) = 2 * 176 / 1024
    row = stats.binomial(7, 10).iloc[0]
    assert row["p_value"] == pytest.approx(352 / 1024)
    assert row["effect_size"] == pytest.approx(2 * np.arcsin(np.sqrt(0.7)) - np.pi / 2)


@pytest.mark.parametrize("args", [(11, 10), (3, 0), (2.5, 10)])
def test_binomial_errors(args):
    with pytest.raises(ValueError, match="successes"):
        stats.binomial(*args)


def test_tost_paired_matches_statsmodels(wide):
    w = wide["trust_paired"]
    row = stats.tost(w["ai"], w["real"], low=-0.5, high=0.5).iloc[0]
    p, lower, upper = ttost_paired(w["ai"].to_numpy(), w["real"].to_numpy(), -0.5, 0.5)
    assert row["p_value"] == pytest.approx(p, rel=1e-10)
    assert row["t_lower"] == pytest.approx(lower[0], rel=1e-12)
    assert row["t_upper"] == pytest.approx(upper[0], rel=1e-12)
    # the 90% interval (-0.454, -0.299) lies inside +-0.5, so equivalence is shown
    assert row["p_value"] < 0.05 and -0.5 < row["ci_low"] < row["ci_high"] < 0.5
    assert row["confidence"] == pytest.approx(0.9)


def test_tost_fails_when_the_interval_crosses_a_bound(wide):
    w = wide["trust_paired"]
    row = stats.tost(w["ai"], w["real"], low=-0.3, high=0.3).iloc[0]
    assert row["p_value"] > 0.05
    assert row["ci_low"] < -0.3


def test_tost_one_sample_matches_statsmodels():
    x = np.array([0.52, 0.49, 0.51, 0.5, 0.48, 0.53, 0.5, 0.51])
    row = stats.tost(x, low=-0.05, high=0.05, mu=0.5).iloc[0]
    p, _, _ = ttost_paired(x, np.full(len(x), 0.5), -0.05, 0.05)
    assert row["p_value"] == pytest.approx(p, rel=1e-10)
    assert row["estimate"] == pytest.approx(x.mean() - 0.5)


def test_tost_bounds_must_be_ordered():
    with pytest.raises(ValueError, match="low < high"):
        stats.tost([1.0, 2.0], [1.0, 1.5], low=0.3, high=-0.3)


def test_paired_wide_keeps_complete_cases():
    import pandas as pd

    data = pd.DataFrame(
        {
            "participant": ["a", "a", "b", "c", "c"],
            "condition": ["ai", "real", "ai", "ai", "real"],
            "value": [1.0, 2.0, 3.0, 4.0, 6.0],
        }
    )
    wide = stats.paired_wide(data, "value")
    assert list(wide.index) == ["a", "c"] and list(wide.columns) == ["ai", "real"]
    with pytest.raises(ValueError, match="'score' is not in the data"):
        stats.paired_wide(data, "score")


def test_paired_tests_long_form(sim):
    from analysis.exclusions import included_trials, screen_participants

    kept = included_trials(sim.trials, screen_participants(sim.trials, sim.participants))
    trust = kept[kept["measure"] == "trust"]
    table = stats.paired_tests(trust, dv="value_number", within="condition", subject="participant")
    assert list(table["method"]) == ["paired_t", "wilcoxon"]
    assert (table["level"] == "participant").all()
    assert table.loc[0, "n"] == 113
    with pytest.raises(ValueError, match="1 participant\\(s\\) with both ai and real"):
        stats.paired_tests(trust[trust["participant"] == "s7-0001"], dv="value_number")


def test_wilcoxon_continuity_correction_as_r_default():
    """correct=True is R's wilcox.test default (correct = TRUE); no R here, so the expected
    value is R's documented formula worked by hand and scipy's equivalent (correction=True)."""
    # The hand example above: V = 9, n(n+1)/4 = 5, sigma^2 = 7.375.
    # R: z <- V - n(n+1)/4 = 4; z <- (z - sign(z) * 0.5) / sigma = 3.5 / sqrt(7.375)
    row = stats.wilcoxon([4, 1, 5, 3, 6], [1, 2, 3, 3, 4], correct=True).iloc[0]
    assert row["z"] == pytest.approx(3.5 / np.sqrt(7.375), rel=1e-12)
    assert row["p_value"] == pytest.approx(0.19746607, rel=1e-7)  # 2 * pnorm(-1.2888045)
    assert bool(row["continuity_correction"]) is True
    assert not stats.wilcoxon([4, 1, 5, 3, 6], [1, 2, 3, 3, 4]).iloc[0]["continuity_correction"]
    rng = np.random.default_rng(7)
    x, y = rng.normal(0.2, 1, 30).round(1), rng.normal(0, 1, 30).round(1)
    scipy = sps.wilcoxon(x, y, method="approx", correction=True, zero_method="wilcox")
    assert stats.wilcoxon(x, y, correct=True).iloc[0]["p_value"] == pytest.approx(
        scipy.pvalue, rel=1e-12
    )
    # A negative statistic moves up by 0.5 towards the centre.
    below = stats.wilcoxon([1, 2, 3, 3, 4], [4, 1, 5, 3, 6], correct=True).iloc[0]
    assert below["z"] == pytest.approx(-3.5 / np.sqrt(7.375), rel=1e-12)
