"""Descriptive statistics of unit scores."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis.descriptives import describe, within_ci


def test_describe_by_condition():
    data = pd.DataFrame(
        {
            "condition": ["ai"] * 4 + ["real"] * 3 + ["real"],
            "value": [1.0, 2.0, 3.0, 6.0, 4.0, 5.0, 6.0, np.nan],
        }
    )
    table = describe(data, "value", by=["condition"]).set_index("condition")
    ai = table.loc["ai"]
    assert (ai["mean"], ai["median"], ai["min"], ai["max"], ai["n"]) == (3.0, 2.5, 1.0, 6.0, 4)
    assert ai["sd"] == pytest.approx(np.std([1, 2, 3, 6], ddof=1))
    assert ai["se"] == pytest.approx(ai["sd"] / 2)
    assert ai["ci_high"] == pytest.approx(3.0 + sps.t.ppf(0.975, 3) * ai["se"])
    assert table.loc["real", "n"] == 3  # the NaN is not counted


def test_one_value_has_no_spread():
    table = describe(pd.DataFrame({"condition": ["ai"], "value": [2.0]}), "value")
    assert table.loc[0, "mean"] == 2.0 and np.isnan(table.loc[0, "sd"])
    assert np.isnan(table.loc[0, "ci_low"])


def test_missing_column():
    with pytest.raises(ValueError, match="column 'score' is not in the data"):
        describe(pd.DataFrame({"condition": ["ai"], "value": [2.0]}), "score")


# Five participants in three conditions. Expected values from plain R (Rmisc is not installed;
# this is summarySEwithin's computation on one score per participant and condition):
#   d <- data.frame(participant = rep(c("p1","p2","p3","p4","p5"), each = 3),
#                   condition = rep(c("a","b","c"), 5),
#                   value = c(3, 4, 6, 2, 2, 5, 5, 7, 7, 1, 3, 2, 4, 4, 6))
#   m <- tapply(d$value, d$participant, mean)
#   d$normed <- d$value - m[d$participant] + mean(d$value)
#   J <- 3
#   lapply(split(d, d$condition), function(s) { n <- nrow(s)
#     sdn <- sd(s$normed) * sqrt(J / (J - 1)); h <- qt(0.975, n - 1) * sdn / sqrt(n)
#     c(mean(s$value), sdn, mean(s$value) - h, mean(s$value) + h) })
WITHIN_DATA = pd.DataFrame(
    {
        "participant": np.repeat(["p1", "p2", "p3", "p4", "p5"], 3),
        "condition": ["a", "b", "c"] * 5,
        "value": [3, 4, 6, 2, 2, 5, 5, 7, 7, 1, 3, 2, 4, 4, 6],
    }
)
WITHIN_R = {  # condition: (mean, sd, ci_low, ci_high)
    "a": (3.0, 0.341565025531986, 2.57589100475138, 3.42410899524862),
    "b": (4.0, 1.056724498943157, 2.68790323364237, 5.31209676635763),
    "c": (5.2, 0.983192080250175, 3.97920579063429, 6.42079420936571),
}


def test_within_ci_matches_r():
    table = within_ci(WITHIN_DATA).set_index("condition")
    for condition, (mean, sd, low, high) in WITHIN_R.items():
        row = table.loc[condition]
        assert (row["mean"], row["sd"], row["ci_low"], row["ci_high"]) == pytest.approx(
            (mean, sd, low, high), rel=1e-12
        )
        assert row["n"] == 5
        assert row["se"] == pytest.approx(sd / np.sqrt(5), rel=1e-12)


def test_within_ci_by_hand():
    # p1: a 1, b 2; p2: a 2, b 2; p3: a 3, b 5. Subject means 1.5, 2, 4; grand mean 2.5.
    # Normalised a: 1 - 1.5 + 2.5 = 2, 2.5, 1.5 -> SD 0.5; Morey's factor sqrt(2 / 1);
    # half-width t(0.975, 2) * 0.5 * sqrt(2) / sqrt(3) = 4.302653 * 0.408248 = 1.756550.
    data = pd.DataFrame(
        {
            "participant": ["p1", "p1", "p2", "p2", "p3", "p3"],
            "condition": ["a", "b"] * 3,
            "value": [1.0, 2.0, 2.0, 2.0, 3.0, 5.0],
        }
    )
    table = within_ci(data).set_index("condition")
    assert table.loc["a", "mean"] == 2.0 and table.loc["b", "mean"] == 3.0
    assert table.loc["a", "ci_high"] - 2.0 == pytest.approx(1.756550, abs=1e-6)
    assert table.loc["b", "ci_low"] == pytest.approx(3.0 - 1.756550, abs=1e-6)


def test_within_ci_averages_repeated_rows_and_drops_incomplete_subjects():
    repeated = pd.concat(
        [
            WITHIN_DATA,
            # p1's second "a" row moves its a score to (3 + 3) / 2: nothing changes.
            pd.DataFrame({"participant": ["p1"], "condition": ["a"], "value": [3.0]}),
            # p6 lacks c, p7 has only a NaN in b: both are left out.
            pd.DataFrame(
                {
                    "participant": ["p6", "p6", "p7", "p7", "p7"],
                    "condition": ["a", "b", "a", "b", "c"],
                    "value": [9.0, 9.0, 1.0, np.nan, 1.0],
                }
            ),
        ]
    )
    table = within_ci(repeated).set_index("condition")
    assert table.loc["a", "ci_low"] == pytest.approx(WITHIN_R["a"][2], rel=1e-12)
    assert set(table["n"]) == {5}


def test_within_ci_edge_cases():
    one = within_ci(WITHIN_DATA[WITHIN_DATA["participant"] == "p1"])
    assert list(one["mean"]) == [3.0, 4.0, 6.0] and one["ci_low"].isna().all()
    single = within_ci(WITHIN_DATA[WITHIN_DATA["condition"] == "a"])
    assert single.loc[0, "mean"] == 3.0 and np.isnan(single.loc[0, "sd"])
    assert within_ci(WITHIN_DATA.iloc[:0]).empty
    with pytest.raises(ValueError, match="column 'score'"):
        within_ci(WITHIN_DATA, dv="score")
    with pytest.raises(ValueError, match="confidence"):
        within_ci(WITHIN_DATA, confidence=1.5)
    with pytest.raises(ValueError, match="infinite"):
        within_ci(WITHIN_DATA.assign(value=[np.inf] + [1.0] * 14))
