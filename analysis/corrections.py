"""Multiple-comparison corrections within a family of tests: Holm and Benjamini-Hochberg."""

from __future__ import annotations

import numpy as np

METHODS = ("holm", "bh", "none")


def adjust(p_values, method: str = "holm") -> np.ndarray:
    """Adjust p-values for multiple comparisons, as R's ``p.adjust``.

    Parameters
    ----------
    p_values : array_like of float
        p-values of one family; NaN entries (tests that could not be run) are left NaN and do
        not count towards the family size.
    method : {"holm", "bh", "none"}
        Holm's step-down family-wise correction, Benjamini-Hochberg's false discovery rate, or
        none.

    Returns
    -------
    numpy.ndarray
        Adjusted p-values in the input order, capped at 1.

    Notes
    -----
    With m tests and p sorted ascending, p_(1) <= ... <= p_(m):

    - Holm: p~_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)) (``p.adjust(p, "holm")``).
    - BH: p~_(i) = min_{j >= i} min(1, m p_(j) / j) (``p.adjust(p, "BH")``).

    References
    ----------
    Holm, S. (1979). A simple sequentially rejective multiple test procedure. Scandinavian
    Journal of Statistics, 6, 65-70.
    Benjamini, Y., & Hochberg, Y. (1995). Controlling the false discovery rate. Journal of the
    Royal Statistical Society B, 57, 289-300.
    """
    if method not in METHODS:
        raise ValueError(f"correction must be one of {', '.join(METHODS)}, got {method!r}")
    p = np.asarray(p_values, dtype=float).ravel()
    known = ~np.isnan(p)
    if ((p[known] < 0) | (p[known] > 1)).any():
        raise ValueError(f"p-values must lie in [0, 1], got {p[known].min()}..{p[known].max()}")
    out = np.full(p.shape, np.nan)
    values = p[known]
    m = len(values)
    if m == 0 or method == "none":
        out[known] = values
        return out
    order = np.argsort(values, kind="mergesort")
    ranked = values[order]
    if method == "holm":
        steps = np.maximum.accumulate((m - np.arange(m)) * ranked)
    else:
        steps = np.minimum.accumulate((m / np.arange(m, 0, -1)) * ranked[::-1])[::-1]
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(steps, 1.0)
    out[known] = adjusted
    return out
