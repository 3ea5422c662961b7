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


WITHIN_COLUMNS = ("mean", "sd", "se", "ci_low", "ci_high", "n")


def within_ci(
    data: pd.DataFrame,
    dv: str = "value",
    within: str = "condition",
    subject: str = "participant",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Within-participant confidence intervals of each condition's mean (Cousineau-Morey).

    Parameters
    ----------
    data : pandas.DataFrame
        Long data with columns dv, within and subject; several rows of one subject and condition
        are averaged first.
    dv, within, subject : str
        Column names.
    confidence : float
        Level of the intervals.

    Returns
    -------
    pandas.DataFrame
        One row per condition (sorted): ``within``, ``mean`` (of the subjects' scores), ``sd``
        (of the normalised scores, with Morey's correction), ``se``, ``ci_low``, ``ci_high`` and
        ``n`` (subjects). Only subjects with a score in every condition are used (as R's
        complete.cases). sd, se and the interval are NaN below two subjects or with one
        condition (nothing varies within a subject).

    Notes
    -----
    Each subject's scores are centred on the subject's mean and moved to the grand mean
    (Cousineau 2005); the variance of the normalised scores is multiplied by J / (J - 1) for J
    conditions (Morey 2008); the half-width is t(1 - (1 - confidence) / 2, n - 1) times sd /
    sqrt(n). The same as ``Rmisc::summarySEwithin`` on one score per subject and condition.
    Differences between subjects drop out, so the intervals show what a within-subject test
    sees; they are not intervals for the population mean of one condition.

    References
    ----------
    Cousineau, D. (2005). Confidence intervals in within-subject designs: A simpler solution to
    Loftus and Masson's method. Tutorials in Quantitative Methods for Psychology, 1, 42-45.
    Morey, R. D. (2008). Confidence intervals from normalized data: A correction to Cousineau
    (2005). Tutorials in Quantitative Methods for Psychology, 4, 61-64.
    """
    for column in (dv, within, subject):
        if column not in data:
            raise ValueError(f"column {column!r} is not in the data")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}")
    values = pd.to_numeric(data[dv], errors="coerce").astype(float)
    if np.isinf(values).any():
        raise ValueError(f"{dv} contains infinite values")
    cells = (
        data.assign(**{dv: values})
        .dropna(subset=[dv])
        .groupby([subject, within])[dv]
        .mean()
        .unstack(within)
        .dropna()
    )
    n, j = cells.shape
    normed = cells.sub(cells.mean(axis=1), axis=0) + (float(cells.to_numpy().mean()) if n else 0.0)
    means = cells.mean(axis=0)
    if n < 2 or j < 2:
        sd = pd.Series(np.nan, index=cells.columns)
        t = np.nan
    else:
        sd = normed.std(axis=0, ddof=1) * np.sqrt(j / (j - 1))
        t = float(stats.t.ppf(0.5 + confidence / 2, n - 1))
    se = sd / np.sqrt(n) if n else sd
    table = pd.DataFrame(
        {
            within: list(cells.columns),
            "mean": means.to_numpy(dtype=float),
            "sd": sd.to_numpy(dtype=float),
            "se": se.to_numpy(dtype=float),
            "ci_low": (means - t * se).to_numpy(dtype=float),
            "ci_high": (means + t * se).to_numpy(dtype=float),
            "n": n,
        }
    )
    return table.sort_values(within, ignore_index=True)[[within, *WITHIN_COLUMNS]]
