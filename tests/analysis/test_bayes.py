"""JZS Bayes factors against R's BayesFactor::ttestBF, their wording and their edge cases.

Expected values are log BF10, printed by R 4.2.2 with BayesFactor 0.9.12-4.4 from
``extractBF(<call>, logbf = TRUE)$bf`` for the call written beside each one.
"""

import math

import numpy as np
import pytest

from analysis.bayes import (
    DEFAULT_RSCALE,
    BayesFactor,
    bf_sentence,
    jzs_log_bf10,
    rscale_value,
    ttest_bf,
)

R_TOL = 1e-4  # the brief's tolerance, relative, on BF10; the values below agree to ~1e-9

# R's sleep data (Cushny & Peebles 1905): extra hours of sleep of 10 patients under two drugs.
SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]
NEAR_ZERO = np.array([-1.2, 0.4, 0.8, -0.3, 0.35, -0.05, 0.9, -0.95, 0.1, 0.02])
LARGE_T = 1 + 0.1 * np.sin(np.arange(1, 41))  # R: i <- 1:40; d <- 1 + 0.1 * sin(i); t = 87.98
HUGE_T = 0.5 + 0.01 * np.cos(np.arange(1, 201))  # R: i <- 1:200; 0.5 + 0.01 * cos(i); t = 1000

CASES = [
    # x <- sleep$extra[1:10]; y <- sleep$extra[11:20]
    # ttestBF(x = x, y = y, paired = TRUE)
    ("sleep", lambda: ttest_bf(SLEEP_1, SLEEP_2), 2.84832680915),
    # ttestBF(x = x, y = y, paired = TRUE, rscale = 1)
    ("sleep, r = 1", lambda: ttest_bf(SLEEP_1, SLEEP_2, rscale=1), 2.91317694056),
    # ttestBF(x = x, y = y, paired = TRUE, rscale = "wide")  (the same prior by name)
    ("sleep, wide", lambda: ttest_bf(SLEEP_1, SLEEP_2, rscale="wide"), 2.91317694056),
    # ttestBF(x = c(5.1, 4.8, 6.0), y = c(4.9, 5.2, 5.1), paired = TRUE)
    ("n = 3", lambda: ttest_bf([5.1, 4.8, 6.0], [4.9, 5.2, 5.1]), -0.607111497859),
    # z <- c(-1.2, 0.4, 0.8, -0.3, 0.35, -0.05, 0.9, -0.95, 0.1, 0.02)
    # ttestBF(x = z + 4, y = rep(4, 10), paired = TRUE)          (t = 0.032)
    ("t near 0", lambda: ttest_bf(NEAR_ZERO + 4, np.full(10, 4.0)), -1.17462622825),
    # ttestBF(x = z + 4, y = rep(4, 10), paired = TRUE, rscale = 0.3)
    (
        "t near 0, r = 0.3",
        lambda: ttest_bf(NEAR_ZERO + 4, np.full(10, 4.0), rscale=0.3),
        -0.62036350702,
    ),
    # ttestBF(x = c(0.55, 0.62, 0.48, 0.71, 0.58, 0.66, 0.52, 0.6), mu = 0.5)
    (
        "one sample against 0.5",
        lambda: ttest_bf([0.55, 0.62, 0.48, 0.71, 0.58, 0.66, 0.52, 0.6], mu=0.5),
        1.78209370465,
    ),
]


@pytest.mark.parametrize(("name", "compute", "r_log_bf10"), CASES, ids=[c[0] for c in CASES])
def test_matches_bayesfactor_ttestbf(name, compute, r_log_bf10):
    bf = compute()
    assert bf.bf10 == pytest.approx(math.exp(r_log_bf10), rel=R_TOL)
    assert bf.bf01 == pytest.approx(math.exp(-r_log_bf10), rel=R_TOL)
    assert bf.log_bf10 == pytest.approx(r_log_bf10, rel=R_TOL, abs=R_TOL)


def test_sleep_matches_the_published_value():
    """BayesFactor's documentation of ttestBF gives BF10 = 17.26 for the paired sleep data."""
    assert ttest_bf(SLEEP_1, SLEEP_2).bf10 == pytest.approx(17.259, abs=0.001)


# Above |t| = 15 ttestBF prints "t is large; approximation invoked." and integrates over delta
# with R's noncentral t density, whose accuracy is limited there: its BF10 differs from the
# exact integral by about 1e-3 relative. The exact integral over g, written in plain R, is
#   jzs_log_bf10 <- function(t, n, r) {
#     nu <- n - 1
#     h <- function(u) { g <- exp(u); -0.5 * log1p(n * g) - (nu + 1) / 2 *
#       (log1p(t^2 / ((1 + n * g) * nu)) - log1p(t^2 / nu)) + log(r) - 0.5 * log(2 * pi) -
#       1.5 * u - r^2 / (2 * g) + u }
#     m <- optimize(function(u) -h(u), c(-20, 20 + 2 * log(abs(t) + 1)), tol = 1e-12)$minimum
#     h(m) + log(integrate(function(u) exp(h(u) - h(m)), m - 60, m + 80, rel.tol = 1e-12,
#                          subdivisions = 1000L)$value)
#   }
# and gives the "exact" values below (it also reproduces ttestBF's 2.84832680915 for sleep).
LARGE = [
    # t <- mean(d) / (sd(d) / sqrt(40)); jzs_log_bf10(t, 40, sqrt(2) / 2) -> 98.2536899887;
    # extractBF(ttestBF(x = d + 3, y = rep(3, 40), paired = TRUE), logbf = TRUE)$bf -> 98.2551417564
    ("t = 88", LARGE_T, DEFAULT_RSCALE, 98.2536899887, 98.2551417564),
    # jzs_log_bf10(t, 40, sqrt(2)) -> 98.9384954711;
    # ttestBF(x = d + 3, y = rep(3, 40), paired = TRUE, rscale = sqrt(2)) -> 98.939908808
    ("t = 88, r = sqrt 2", LARGE_T, math.sqrt(2), 98.9384954711, 98.939908808),
    # t = 1000.0124735 with n = 200: jzs_log_bf10(t, 200, sqrt(2) / 2) -> 840.509163093;
    # ttestBF(x = d2, y = rep(0, 200), paired = TRUE) -> 840.509215247 (BF10 = 1e365: only the
    # log is a float)
    ("t = 1000", HUGE_T, DEFAULT_RSCALE, 840.509163093, 840.509215247),
]


@pytest.mark.parametrize(("name", "d", "r", "exact", "ttestbf"), LARGE, ids=[c[0] for c in LARGE])
def test_large_t_stays_finite_on_the_log_scale(name, d, r, exact, ttestbf):
    bf = ttest_bf(d, np.zeros(len(d)), rscale=r)
    assert math.isfinite(bf.log_bf10)
    assert bf.log_bf10 == pytest.approx(exact, rel=1e-9)
    assert bf.log_bf10 == pytest.approx(ttestbf, rel=R_TOL)
    if exact > 709:
        assert bf.bf10 == math.inf and bf.bf01 == 0.0
    assert "times more likely under a difference" in bf_sentence(bf.bf10, bf.log_bf10)


def test_log_bf_is_smooth_and_symmetric_in_t():
    values = [jzs_log_bf10(t, 30) for t in np.linspace(0, 60, 61)]
    assert np.all(np.diff(values) > 0)  # more evidence for a difference as |t| grows
    assert jzs_log_bf10(-3.0, 30) == pytest.approx(jzs_log_bf10(3.0, 30), rel=1e-12)
    assert math.isfinite(jzs_log_bf10(1e6, 5000))


def test_paired_is_the_one_sample_test_of_the_differences():
    x, y = np.array(SLEEP_1), np.array(SLEEP_2)
    assert ttest_bf(x, y).log_bf10 == pytest.approx(ttest_bf(x - y).log_bf10, rel=1e-12)
    assert ttest_bf(x, mu=1.0).log_bf10 == pytest.approx(ttest_bf(x - 1.0).log_bf10, rel=1e-12)


def test_incomplete_pairs_are_dropped():
    bf = ttest_bf([*SLEEP_1, np.nan, 1.0], [*SLEEP_2, 2.0, np.nan])
    assert bf.n == 10
    assert bf.log_bf10 == pytest.approx(2.84832680915, rel=R_TOL)


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        ([1.0], [2.0], "at least 2"),
        ([1.0, np.nan], [2.0, 3.0], "at least 2"),
        ([], [], "at least 2"),
        ([1.0, 2.0, 3.0], [0.5, 1.5, 2.5], "constant"),
        ([1.0, np.inf], [1.0, 2.0], "infinite"),
        ([1.0, 2.0], [1.0], "differ in length"),
    ],
)
def test_bad_data_give_a_clear_error(x, y, match):
    with pytest.raises(ValueError, match=match):
        ttest_bf(x, y)


@pytest.mark.parametrize("rscale", [0, -1, math.nan, math.inf, True, "huge", None])
def test_bad_rscale_is_refused(rscale):
    with pytest.raises(ValueError, match="rscale"):
        rscale_value(rscale)
    with pytest.raises(ValueError, match="rscale"):
        ttest_bf(SLEEP_1, SLEEP_2, rscale=rscale)


def test_bad_t_or_n_is_refused():
    with pytest.raises(ValueError, match="at least 2"):
        jzs_log_bf10(1.0, 1)
    with pytest.raises(ValueError, match="finite"):
        jzs_log_bf10(math.nan, 10)


def test_wording():
    assert bf_sentence(1 / 6) == (
        "the data are 6 times more likely under no difference than under a difference"
    )
    assert bf_sentence(17.259) == (
        "the data are 17.3 times more likely under a difference than under no difference"
    )
    assert bf_sentence(2.9).startswith("inconclusive")
    assert bf_sentence(1 / 2.9).startswith("inconclusive")
    assert bf_sentence(3.0).startswith("the data are 3 times more likely under a difference")
    assert bf_sentence(4.0, against=" from chance").endswith("under no difference from chance")
    assert "more than a million" in bf_sentence(None, log_bf10=500.0)
    assert bf_sentence(None) == "the Bayes factor is not available"
    assert BayesFactor(-math.log(6), 0.1, 20, DEFAULT_RSCALE).bf01 == pytest.approx(6)


def test_the_report_puts_the_bayes_factor_beside_the_participant_t_tests(sim):
    """On sim-small with the plan's r = 1. From each test's t statistic R gives log BF10 as
    ttest.tstat(t = -8.039885483118976, n1 = 113, rscale = 1)$bf -> 22.70181301 (trust),
    ttest.tstat(t = 8.444731325113848, n1 = 113, rscale = 1)$bf -> 24.760764912 (choice_real),
    ttest.tstat(t = -6.719338061063983, n1 = 113, rscale = 1)$bf -> 16.2104818957 (d_prime)."""
    from analysis.report import analyse

    results = analyse(sim, plan={"bayes_rscale": 1.0}, mixed_models=False).results
    expected = {"trust": 22.70181301, "choice_real": 24.760764912, "d_prime": 16.2104818957}
    carrying = [t for t in results["tests"] if "log_bf10" in t]
    assert {(t["level"], t["method"]) for t in carrying} <= {
        ("participant", "paired_t"),
        ("participant", "one_sample_t"),
    }
    by_outcome = {t["outcome"]: t for t in carrying}
    for outcome, log_bf10 in expected.items():
        test = by_outcome[outcome]
        assert test["log_bf10"] == pytest.approx(log_bf10, rel=1e-8)
        assert test["bf10"] == pytest.approx(math.exp(log_bf10), rel=1e-7)
        assert test["bf_rscale"] == 1.0
    finding = next(f for f in results["findings"] if f["outcome"] == "trust")
    assert "Bayes factor BF10 = 7.2e+09 (JZS prior, r = 1)" in finding["claim"]
    assert "more than a million times more likely under a difference" in finding["claim"]


def test_a_finding_words_the_bayes_factor_beside_the_tost():
    from analysis.findings import finding

    test = {
        "outcome": "trust",
        "method": "paired_t",
        "level": "participant",
        "family": "primary",
        "estimate": 0.02,
        "ci_low": -0.05,
        "ci_high": 0.09,
        "p_value": 0.57,
        "p_adjusted": 0.57,
        "correction": "holm",
        "statistic": 0.57,
        "df": 119.0,
        "n": 120,
        "scale": [1, 7],
        "log_bf10": -math.log(8.04),
        "bf_rscale": DEFAULT_RSCALE,
    }
    tost = {
        "outcome": "trust",
        "method": "tost",
        "level": "participant",
        "bound_low": -0.3,
        "bound_high": 0.3,
        "p_value": 1e-6,
        "p_adjusted": 1e-6,
        "correction": "holm",
    }
    result = finding(test, 0.05, tost)
    assert result["verdict"] == "no_difference"
    assert (
        "equivalence test (TOST) against ±0.30 points on the 1–7 scale, Holm-adjusted p < 0.001; "
        "Bayes factor BF01 = 8.04 (JZS prior, r = 0.707): the data are 8 times more likely under "
        "no difference than under a difference; N = 120 participants"
    ) in result["claim"]
    # Without a TOST the Bayes factor is still given; it does not change the verdict.
    alone = finding(test, 0.05)
    assert alone["verdict"] == "inconclusive" and "BF01 = 8.04" in alone["claim"]
    middle = finding({**test, "log_bf10": math.log(2.0)}, 0.05, tost)
    assert "BF10 = 2.00 (JZS prior, r = 0.707): inconclusive" in middle["claim"]
    assert "BF" not in finding({k: v for k, v in test.items() if k != "log_bf10"})["claim"]
