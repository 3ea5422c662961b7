"""Closed-form tests on participant or identity scores: t, Wilcoxon, binomial and TOST."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

TEST_COLUMNS = (
    "method",
    "estimate",
    "ci_low",
    "ci_high",
    "confidence",
    "statistic",
    "statistic_name",
    "df",
    "p_value",
    "effect_size",
    "effect_size_name",
    "n",
)


def _row(**values) -> pd.DataFrame:
    """One result row with the common columns first."""
    ordered = {k: values.pop(k, None) for k in TEST_COLUMNS}
    return pd.DataFrame([{**ordered, **values}])


def _finite(x, name: str) -> np.ndarray:
    """Return x as a float array without NaN; raise on infinities."""
    x = np.asarray(x, dtype=float).ravel()
    if np.isinf(x).any():
        raise ValueError(f"{name} contains infinite values")
    return x[~np.isnan(x)]


def _pairs(x, y) -> tuple[np.ndarray, np.ndarray]:
    """Paired arrays with incomplete pairs dropped (like R's complete.cases)."""
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"paired samples differ in length: {len(x)} and {len(y)}")
    keep = ~(np.isnan(x) | np.isnan(y))
    if np.isinf(x[keep]).any() or np.isinf(y[keep]).any():
        raise ValueError("paired samples contain infinite values")
    return x[keep], y[keep]


def _t_on(d: np.ndarray, confidence: float, what: str) -> dict:
    """Student t for the mean of d against 0: t, df, p (two-sided), CI, sd."""
    n = len(d)
    if n < 2:
        raise ValueError(f"{what} needs at least 2 observations, got {n}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    mean, sd = float(np.mean(d)), float(np.std(d, ddof=1))
    se = sd / np.sqrt(n)
    # R's t.test refuses the same case: the t statistic would be 0/0 or infinite.
    if se <= 10 * np.finfo(float).eps * abs(mean) or sd == 0:
        raise ValueError(f"{what}: the data are essentially constant (sd = {sd:g}), t is undefined")
    df = n - 1
    t = mean / se
    half = stats.t.ppf(0.5 + confidence / 2, df) * se
    return {
        "mean": mean,
        "sd": sd,
        "se": se,
        "t": t,
        "df": float(df),
        "p": float(2 * stats.t.sf(abs(t), df)),
        "ci": (mean - half, mean + half),
        "n": n,
    }


def _t_row(method: str, r: dict, confidence: float, effect_size_name: str, **extra) -> pd.DataFrame:
    """The result row of a t-test on `_t_on`'s figures: the mean tested, its interval, and the
    standardised mean (mean / sd) as the effect size; `extra` columns follow."""
    return _row(
        method=method,
        estimate=r["mean"],
        ci_low=r["ci"][0],
        ci_high=r["ci"][1],
        confidence=confidence,
        statistic=r["t"],
        statistic_name="t",
        df=r["df"],
        p_value=r["p"],
        effect_size=r["mean"] / r["sd"],
        effect_size_name=effect_size_name,
        n=r["n"],
        **extra,
    )


def paired_t(x, y, confidence: float = 0.95) -> pd.DataFrame:
    """Paired t-test of x minus y.

    Parameters
    ----------
    x, y : array_like
        Paired scores (e.g. each participant's mean for ai and for real); pairs with a NaN are
        dropped.
    confidence : float
        Level of the confidence interval of the mean difference.

    Returns
    -------
    pandas.DataFrame
        One row: ``method`` ("paired_t"), ``estimate`` = mean(x - y), ``ci_low``, ``ci_high``,
        ``confidence``, ``statistic`` = t = mean(d) / (sd(d) / sqrt(n)), ``statistic_name``,
        ``df`` = n - 1, ``p_value`` (two-sided), ``effect_size`` = d_z = mean(d) / sd(d),
        ``effect_size_name`` ("d_z"), ``n`` (pairs), ``mean_x``, ``mean_y``, ``sd_diff``.

    Notes
    -----
    Same as R's ``t.test(x, y, paired = TRUE)``; d_z as in Lakens (2013).

    References
    ----------
    Lakens, D. (2013). Calculating and reporting effect sizes to facilitate cumulative science.
    Frontiers in Psychology, 4, 863.
    """
    x, y = _pairs(x, y)
    r = _t_on(x - y, confidence, "paired t-test")
    return _t_row(
        "paired_t",
        r,
        confidence,
        "d_z",
        mean_x=float(np.mean(x)),
        mean_y=float(np.mean(y)),
        sd_diff=r["sd"],
    )


def one_sample_t(x, mu: float = 0.0, confidence: float = 0.95) -> pd.DataFrame:
    """One-sample t-test of the mean of x against mu.

    Parameters
    ----------
    x : array_like
        Scores (e.g. each participant's share of choices for the real headshot); NaN dropped.
    mu : float
        Reference value (chance: 0.5 for a share or an accuracy, 0 for d').
    confidence : float
        Level of the confidence interval.

    Returns
    -------
    pandas.DataFrame
        One row: ``method`` ("one_sample_t"), ``estimate`` = mean(x) - mu, ``ci_low``/``ci_high``
        of mean(x) - mu, ``statistic`` = t, ``df`` = n - 1, ``p_value`` (two-sided),
        ``effect_size`` = Cohen's d = (mean(x) - mu) / sd(x), ``n``, ``mean`` = mean(x),
        ``reference_value`` = mu.

    Notes
    -----
    Same as R's ``t.test(x, mu = mu)``; R reports the interval of mean(x), which is this
    interval plus mu.
    """
    x = _finite(x, "x")
    r = _t_on(x - mu, confidence, "one-sample t-test")
    return _t_row(
        "one_sample_t",
        r,
        confidence,
        "d",
        mean=float(np.mean(x)),
        reference_value=float(mu),
    )


def wilcoxon(
    x, y=None, mu: float = 0.0, confidence: float = 0.95, correct: bool = False
) -> pd.DataFrame:
    """Wilcoxon signed-rank test of x minus y (paired) or of x minus mu, normal approximation.

    Parameters
    ----------
    x : array_like
        Scores; with ``y`` the first of the pair (pairs with a NaN are dropped).
    y : array_like, optional
        Second paired sample.
    mu : float
        Location under the null hypothesis when ``y`` is None.
    confidence : float
        Level of the Hodges-Lehmann interval.
    correct : bool
        Continuity correction of the normal approximation, as R's ``correct = TRUE`` (R's
        default): |V - n(n+1)/4| is reduced by 0.5 before dividing by sigma. False (the report's
        choice, kept so that results stay comparable with earlier reports) is ``correct = FALSE``.

    Returns
    -------
    pandas.DataFrame
        One row: ``method`` ("wilcoxon"), ``estimate`` = Hodges-Lehmann pseudo-median of the
        non-zero differences (median of the Walsh averages), ``ci_low``/``ci_high`` (its
        distribution-free interval from the normal approximation; NaN when n is too small),
        ``statistic`` = V (sum of the ranks of positive differences), ``df`` (None), ``p_value``,
        ``effect_size`` = matched-pairs rank-biserial correlation r = (R+ - R-) / (R+ + R-),
        ``n`` (non-zero differences), ``n_zero`` (dropped zero differences), ``r_plus``,
        ``r_minus``, ``z``, ``continuity_correction`` (the ``correct`` used).

    Notes
    -----
    Matches R's ``wilcox.test(x, y, paired = TRUE, exact = FALSE, correct = FALSE)``: zero
    differences are dropped before ranking, tied absolute differences get average ranks and the
    variance n(n+1)(2n+1)/24 - sum(t^3 - t)/48, and p = 2 * P(Z > |V - n(n+1)/4| / sigma), no
    continuity correction. As in R, zeros and ties are exact equalities of doubles, so scores
    must be computed the way R computes them for the ranks to agree (see `analysis.sdt.qnorm`).
    The Hodges-Lehmann interval uses the order
    statistics of the Walsh averages at n(n+1)/4 - z * sqrt(n(n+1)(2n+1)/24) (Hollander & Wolfe),
    without a tie correction.

    References
    ----------
    Kerby, D. S. (2014). The simple difference formula: an approach to teaching nonparametric
    correlation. Comprehensive Psychology, 3, 11.IT.3.1.
    Hollander, M., Wolfe, D. A., & Chicken, E. (2014). Nonparametric statistical methods (3rd ed.).
    """
    if y is None:
        d = _finite(x, "x") - mu
    else:
        a, b = _pairs(x, y)
        d = a - b
    n_zero = int(np.sum(d == 0))
    d = d[d != 0]
    n = len(d)
    if n == 0:
        raise ValueError("Wilcoxon test: every difference is zero, the test is undefined")
    ranks = stats.rankdata(np.abs(d))
    ties = np.unique(ranks, return_counts=True)[1].astype(float)
    r_plus, r_minus = float(ranks[d > 0].sum()), float(ranks[d < 0].sum())
    variance = n * (n + 1) * (2 * n + 1) / 24 - float(np.sum(ties**3 - ties)) / 48
    if variance <= 0:
        raise ValueError("Wilcoxon test: all differences are tied, the variance is zero")
    centred = r_plus - n * (n + 1) / 4
    if correct:
        # R's wilcox.test: z <- (z - sign(z) * 0.5) / SIGMA (two-sided)
        centred -= np.sign(centred) * 0.5
    z = centred / np.sqrt(variance)
    p = float(min(1.0, 2 * stats.norm.sf(abs(z))))

    walsh = ((d[:, None] + d[None, :]) / 2)[np.triu_indices(n)]
    walsh.sort()
    spread = np.sqrt(n * (n + 1) * (2 * n + 1) / 24)
    crit = n * (n + 1) / 4 - stats.norm.ppf(0.5 + confidence / 2) * spread
    k = int(np.floor(crit))
    ci = (float(walsh[k - 1]), float(walsh[len(walsh) - k])) if k >= 1 else (np.nan, np.nan)
    return _row(
        method="wilcoxon",
        estimate=float(np.median(walsh)),
        ci_low=ci[0],
        ci_high=ci[1],
        confidence=confidence,
        statistic=r_plus,
        statistic_name="V",
        df=None,
        p_value=p,
        effect_size=(r_plus - r_minus) / (r_plus + r_minus),
        effect_size_name="rank_biserial",
        n=n,
        n_zero=n_zero,
        r_plus=r_plus,
        r_minus=r_minus,
        z=float(z),
        continuity_correction=bool(correct),
    )


def binomial(successes: int, n: int, p: float = 0.5, confidence: float = 0.95) -> pd.DataFrame:
    """Exact binomial test of a proportion against p.

    Parameters
    ----------
    successes, n : int
        Number of successes (e.g. correct answers) and of trials.
    p : float
        Proportion under the null hypothesis (chance).
    confidence : float
        Level of the Clopper-Pearson interval.

    Returns
    -------
    pandas.DataFrame
        One row: ``method`` ("binomial"), ``estimate`` = successes / n - p, ``ci_low``/``ci_high``
        (Clopper-Pearson interval of the proportion, minus p), ``statistic`` = successes,
        ``p_value`` (two-sided: sum of the probabilities of outcomes no more likely than the one
        observed), ``effect_size`` = Cohen's h = 2 asin(sqrt(k/n)) - 2 asin(sqrt(p)), ``n``,
        ``proportion``, ``reference_value`` = p.

    Notes
    -----
    Same as R's ``binom.test(successes, n, p = p)`` (via ``scipy.stats.binomtest``).
    """
    if int(n) != n or n < 1 or int(successes) != successes or not 0 <= successes <= n:
        raise ValueError(f"binomial test needs 0 <= successes <= n and n >= 1, got {successes}/{n}")
    if not 0 < p < 1:
        raise ValueError(f"p must be between 0 and 1, got {p}")
    result = stats.binomtest(int(successes), int(n), p)
    ci = result.proportion_ci(confidence_level=confidence, method="exact")
    share = successes / n
    return _row(
        method="binomial",
        estimate=share - p,
        ci_low=ci.low - p,
        ci_high=ci.high - p,
        confidence=confidence,
        statistic=float(successes),
        statistic_name="successes",
        df=None,
        p_value=float(result.pvalue),
        effect_size=2 * np.arcsin(np.sqrt(share)) - 2 * np.arcsin(np.sqrt(p)),
        effect_size_name="cohen_h",
        n=int(n),
        proportion=share,
        reference_value=p,
    )


def tost(
    x, y=None, *, low: float, high: float, mu: float = 0.0, alpha: float = 0.05
) -> pd.DataFrame:
    """Two one-sided t-tests (TOST) for equivalence of x - y (or x - mu) within [low, high].

    Parameters
    ----------
    x, y : array_like
        Paired scores (x minus y is tested); without y, x minus mu.
    low, high : float
        Equivalence bounds on the scale of the difference, low < high.
    mu : float
        Reference value for the one-sample form.
    alpha : float
        Level of each one-sided test; the interval has confidence 1 - 2 alpha.

    Returns
    -------
    pandas.DataFrame
        One row: ``method`` ("tost"), ``estimate`` = mean difference, ``ci_low``/``ci_high`` (the
        1 - 2 alpha interval), ``statistic`` (t of the one-sided test with the larger p),
        ``df``, ``p_value`` = max(p_lower, p_upper), ``effect_size`` (d_z or d), ``n``,
        ``bound_low``, ``bound_high``, ``t_lower``, ``p_lower``, ``t_upper``, ``p_upper``.

    Notes
    -----
    t_lower = (mean - low) / se tested against "greater", t_upper = (mean - high) / se against
    "less". Equivalence is shown at alpha when p_value < alpha, i.e. when the 1 - 2 alpha interval
    lies inside [low, high]. Same as ``statsmodels.stats.weightstats.ttost_paired`` and, in R,
    max(t.test(x, y, paired = TRUE, mu = low, alternative = "greater")$p.value,
    t.test(x, y, paired = TRUE, mu = high, alternative = "less")$p.value).

    References
    ----------
    Schuirmann, D. J. (1987). A comparison of the two one-sided tests procedure and the power
    approach for assessing the equivalence of average bioavailability. Journal of
    Pharmacokinetics and Biopharmaceutics, 15, 657-680.
    Lakens, D. (2017). Equivalence tests. Social Psychological and Personality Science, 8, 355-362.
    """
    if not low < high:
        raise ValueError(f"equivalence bounds need low < high, got [{low}, {high}]")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be between 0 and 0.5, got {alpha}")
    if y is None:
        d, name = _finite(x, "x") - mu, "d"
    else:
        a, b = _pairs(x, y)
        d, name = a - b, "d_z"
    r = _t_on(d, 1 - 2 * alpha, "equivalence test")
    t_lower, t_upper = (r["mean"] - low) / r["se"], (r["mean"] - high) / r["se"]
    p_lower, p_upper = float(stats.t.sf(t_lower, r["df"])), float(stats.t.cdf(t_upper, r["df"]))
    binding = t_lower if p_lower >= p_upper else t_upper
    return _row(
        method="tost",
        estimate=r["mean"],
        ci_low=r["ci"][0],
        ci_high=r["ci"][1],
        confidence=1 - 2 * alpha,
        statistic=binding,
        statistic_name="t",
        df=r["df"],
        p_value=max(p_lower, p_upper),
        effect_size=r["mean"] / r["sd"],
        effect_size_name=name,
        n=r["n"],
        bound_low=float(low),
        bound_high=float(high),
        t_lower=t_lower,
        p_lower=p_lower,
        t_upper=t_upper,
        p_upper=p_upper,
    )


def paired_wide(
    data: pd.DataFrame,
    dv: str,
    within: str = "condition",
    subject: str = "participant",
    levels: tuple[str, str] = ("ai", "real"),
) -> pd.DataFrame:
    """Mean of dv per subject and level of `within`, one column per level, complete cases only.

    Parameters
    ----------
    data : pandas.DataFrame
        Long data with columns dv, within and subject.
    dv, within, subject : str
        Column names.
    levels : (str, str)
        The two levels, first minus second in the tests (ai minus real).

    Returns
    -------
    pandas.DataFrame
        Indexed by subject, columns ``levels[0]`` and ``levels[1]``; subjects lacking a level or
        with a NaN mean are dropped (as R's complete.cases).
    """
    for column in (dv, within, subject):
        if column not in data:
            raise ValueError(f"column {column!r} is not in the data")
    rows = data[data[within].isin(levels)]
    means = rows.groupby([subject, within])[dv].mean().unstack(within)
    means = means.reindex(columns=list(levels))
    return means.dropna()


def paired_tests(
    data: pd.DataFrame,
    dv: str,
    within: str = "condition",
    subject: str = "participant",
    levels: tuple[str, str] = ("ai", "real"),
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Paired t-test and Wilcoxon signed-rank test on subject means, first level minus second.

    Returns the rows of `paired_t` and `wilcoxon` stacked, with a ``level`` column naming
    `subject`. Raises ValueError when fewer than two subjects have both levels.
    """
    wide = paired_wide(data, dv, within, subject, levels)
    if len(wide) < 2:
        raise ValueError(
            f"{dv}: {len(wide)} {subject}(s) with both {levels[0]} and {levels[1]}; "
            "a paired test needs at least 2"
        )
    x, y = wide[levels[0]].to_numpy(), wide[levels[1]].to_numpy()
    result = pd.concat(
        [paired_t(x, y, confidence), wilcoxon(x, y, confidence=confidence)], ignore_index=True
    )
    return result.assign(level=subject)
