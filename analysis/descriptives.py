"""Descriptive statistics of unit scores per outcome and condition."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

DESCRIPTIVE_COLUMNS = ("mean", "sd", "se", "ci_low", "ci_high", "median", "min", "max", "n")


def describe(
    data: pd.DataFrame, dv: str = "value", by=("condition",), confidence: float = 0.95
) -> pd.DataFrame:
    """Mean, spread and a t interval of dv within each group.

    Parameters
    ----------
    data : pandas.DataFrame
        Long data, one row per unit (e.g. each participant's mean trust in one condition).
    dv : str
        Column to describe.
    by : sequence of str
        Grouping columns.
    confidence : float
        Level of the interval of the mean.

    Returns
    -------
    pandas.DataFrame
        The ``by`` columns, then ``mean``, ``sd`` (n - 1 denominator), ``se`` = sd / sqrt(n),
        ``ci_low``/``ci_high`` = mean -/+ t(1 - (1 - confidence) / 2, n - 1) se, ``median``,
        ``min``, ``max`` and ``n`` (non-missing values). sd, se and the interval are NaN when
        n < 2: one value has no spread.
    """
    by = list(by)
    missing = [c for c in [dv, *by] if c not in data]
    if missing:
        raise ValueError(f"column {missing[0]!r} is not in the data")
    values = data.dropna(subset=[dv])
    grouped = values.groupby(by, sort=True)[dv]
    table = grouped.agg(
        mean="mean", sd="std", median="median", min="min", max="max", n="size"
    ).reset_index()
    n = table["n"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        table["se"] = table["sd"] / np.sqrt(n)
        half = stats.t.ppf(0.5 + confidence / 2, np.where(n > 1, n - 1, np.nan)) * table["se"]
    table["ci_low"] = table["mean"] - half
    table["ci_high"] = table["mean"] + half
    return table[[*by, *DESCRIPTIVE_COLUMNS]]
