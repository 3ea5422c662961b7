"""Descriptive statistics of unit scores."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis.descriptives import describe


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
