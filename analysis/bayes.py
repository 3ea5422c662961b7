"""JZS Bayes factors for paired and one-sample t designs, and their wording.

The Bayes factor compares H0 (no difference: the standardised effect delta is 0) with H1 (delta
follows a Cauchy distribution centred on 0 with scale r). It is computed from t and n by one
numerical integral over g, as R's ``BayesFactor::ttestBF`` does for one-sample and paired data.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

# numpy, SciPy and analysis.stats are imported where they are used: the wording below is read
# by analysis.findings, which needs the standard library only.

DEFAULT_RSCALE = math.sqrt(2) / 2
# BayesFactor's names for the usual prior scales.
RSCALE_NAMES = {"medium": math.sqrt(2) / 2, "wide": 1.0, "ultrawide": math.sqrt(2)}
# A Bayes factor between 1/3 and 3 is worded as inconclusive (Jeffreys 1961; Lee & Wagenmakers
# 2013 call it "anecdotal").
INCONCLUSIVE = (1 / 3, 3.0)


@dataclass(frozen=True)
class BayesFactor:
    """A JZS Bayes factor: BF10 (H1 over H0) on the log scale, with its inputs."""

    log_bf10: float
    t: float
    n: int
    rscale: float

    @property
    def bf10(self) -> float:
        """BF10; inf when it overflows a float (log_bf10 stays finite)."""
        return math.exp(self.log_bf10) if self.log_bf10 < 709 else math.inf

    @property
    def bf01(self) -> float:
        """BF01 = 1 / BF10; inf when it overflows a float."""
        return math.exp(-self.log_bf10) if self.log_bf10 > -709 else math.inf


def rscale_value(rscale: float | str) -> float:
    """The prior scale as a number: a positive finite float or one of BayesFactor's names."""
    if isinstance(rscale, str):
        if rscale not in RSCALE_NAMES:
            raise ValueError(
                f"rscale {rscale!r} is not a number or one of {', '.join(RSCALE_NAMES)}"
            )
        return RSCALE_NAMES[rscale]
    if isinstance(rscale, bool) or not isinstance(rscale, (int, float)):
        raise ValueError(f"rscale must be a positive number, got {rscale!r}")
    if not math.isfinite(rscale) or rscale <= 0:
        raise ValueError(f"rscale must be a positive finite number, got {rscale!r}")
    return float(rscale)


def _log_integrand(u: float, t: float, n: int, r: float) -> float:
    """log of the BF10 integrand over u = log g (the Jacobian g is included).

    BF10 = integral over g of (1 + n g)^(-1/2) [(1 + t^2 / ((1 + n g) nu)) / (1 + t^2 / nu)]
    ^(-(nu + 1) / 2) p(g), with p(g) the inverse-gamma(1/2, r^2 / 2) density (Rouder et al. 2009,
    eq. 1, with the prior scale r of Morey & Rouder's BayesFactor).
    """
    nu = n - 1
    g = math.exp(u)
    a = math.log1p(n * g)
    # log(1 + t^2 / ((1 + n g) nu)) - log(1 + t^2 / nu), written to keep precision for any t.
    q = t * t / nu
    ratio = math.log1p(q * math.exp(-a)) - math.log1p(q)
    log_prior = math.log(r) - 0.5 * math.log(2 * math.pi) - 1.5 * u - r * r / (2 * g)
    return -0.5 * a - (nu + 1) / 2 * ratio + log_prior + u


def jzs_log_bf10(t: float, n: int, rscale: float | str = DEFAULT_RSCALE) -> float:
    """log BF10 of a one-sample (or paired) t statistic on n observations (pairs).

    Finite for any finite t: the integrand is scaled by its maximum before integrating.
    """
    from scipy import integrate, optimize

    r = rscale_value(rscale)
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 2:
        raise ValueError(f"a Bayes factor needs at least 2 observations, got n = {n!r}")
    if not math.isfinite(t):
        raise ValueError(f"t must be finite, got {t!r}")
    n = int(n)

    def h(u: float) -> float:
        return _log_integrand(u, t, n, r)

    # The integrand over log g has one peak; find it, then integrate exp(h - peak) either side.
    found = optimize.minimize_scalar(
        lambda u: -h(u), bracket=(-5.0, 2 * math.log(max(abs(t), 1.0)) + 1.0), tol=1e-10
    )
    mode = float(found.x)
    peak = h(mode)

    def f(u: float) -> float:
        return math.exp(h(u) - peak)

    # Integrate out to where exp(h - peak) is negligible: below the mode the prior's
    # exp(-r^2 / 2g) vanishes within a few units of u, above it h falls off like -u; in pieces
    # so that quad sees the peak.
    edges = (mode - 60.0, mode - 3.0, mode, mode + 3.0, mode + 15.0, mode + 80.0)
    total = sum(
        integrate.quad(f, a, b, epsabs=0.0, epsrel=1e-12, limit=200)[0]
        for a, b in zip(edges[:-1], edges[1:], strict=False)
    )
    return peak + math.log(total)


def ttest_bf(x, y=None, *, mu: float = 0.0, rscale: float | str = DEFAULT_RSCALE) -> BayesFactor:
    """JZS Bayes factor of a paired (x minus y) or one-sample (x minus mu) design.

    Parameters
    ----------
    x, y : array_like
        Paired scores (x minus y is tested; pairs with a NaN are dropped); without y, x minus mu
        (NaNs dropped).
    mu : float
        Reference value of the one-sample form.
    rscale : float or str
        Scale r of the Cauchy prior on the standardised effect under H1; sqrt(2)/2 ("medium")
        by default, as BayesFactor's.

    Returns
    -------
    BayesFactor
        ``log_bf10``, ``bf10``, ``bf01``, with ``t``, ``n`` and ``rscale``.

    Raises
    ------
    ValueError
        Fewer than 2 complete observations, infinite values, constant differences (t is not
        defined), or an invalid rscale.

    Notes
    -----
    Same as ``BayesFactor::ttestBF(x = x, y = y, paired = TRUE, rscale = r)`` and
    ``ttestBF(x = x, mu = mu, rscale = r)``.

    References
    ----------
    Rouder, J. N., Speckman, P. L., Sun, D., Morey, R. D., & Iverson, G. (2009). Bayesian t tests
    for accepting and rejecting the null hypothesis. Psychonomic Bulletin & Review, 16, 225-237.
    """
    import numpy as np

    from analysis.stats import _finite, _pairs

    r = rscale_value(rscale)
    if y is None:
        d = _finite(x, "x") - mu
    else:
        a, b = _pairs(x, y)
        d = a - b
    n = len(d)
    if n < 2:
        raise ValueError(f"a Bayes factor needs at least 2 complete observations, got {n}")
    mean, sd = float(np.mean(d)), float(np.std(d, ddof=1))
    if sd == 0 or sd <= 10 * float(np.finfo(float).eps) * abs(mean):
        raise ValueError(
            f"the differences are essentially constant (sd = {sd:g}): t and the Bayes factor "
            "are undefined"
        )
    t = mean / (sd / math.sqrt(n))
    return BayesFactor(jzs_log_bf10(t, n, r), t, n, r)


def _times(value: float) -> str:
    """'6.2', '31', '1,234' or 'more than a million': a factor for a sentence."""
    if value >= 1e6:
        return "more than a million"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if value >= 10 else f"{value:.2g}"


def bf_sentence(bf10: float | None, log_bf10: float | None = None, against: str = "") -> str:
    """Plain words for a Bayes factor.

    "the data are 6.2 times more likely under no difference than under a difference" (BF01 >= 3),
    "... more likely under a difference than under no difference" (BF10 >= 3), or inconclusive
    between 1/3 and 3. ``against`` names what the difference is from (e.g. " from chance").
    """
    if log_bf10 is None:
        if bf10 is None or not bf10 > 0:
            return "the Bayes factor is not available"
        log_bf10 = math.log(bf10)
    low, high = INCONCLUSIVE
    null, alt = f"no difference{against}", f"a difference{against}"
    if log_bf10 >= math.log(high):
        factor = math.exp(log_bf10) if log_bf10 < 709 else math.inf
        return f"the data are {_times(factor)} times more likely under {alt} than under {null}"
    if log_bf10 <= math.log(low):
        factor = math.exp(-log_bf10) if log_bf10 > -709 else math.inf
        return f"the data are {_times(factor)} times more likely under {null} than under {alt}"
    return (
        f"inconclusive: the data are about as likely under {null} as under {alt} "
        f"(the Bayes factor is between 1/3 and 3)"
    )


def bf_label(log_bf10: float) -> str:
    """'BF01 = 6.20' when the data favour no difference, else 'BF10 = 17.3'."""
    name, log_value = ("BF10", log_bf10) if log_bf10 >= 0 else ("BF01", -log_bf10)
    if log_value >= math.log(1e6):
        return f"{name} = {math.exp(log_value):.2g}" if log_value < 709 else f"{name} > 1e307"
    value = math.exp(log_value)
    if value < 10:
        return f"{name} = {value:.2f}"
    return f"{name} = {value:.1f}" if value < 100 else f"{name} = {value:,.0f}"


def bf_text(test: dict, against: str = "") -> str:
    """'Bayes factor BF01 = 6.20 (JZS prior, r = 0.707): the data are 6.2 times more likely
    under no difference than under a difference', from a test's ``log_bf10`` and
    ``bf_rscale``; '' when the test has none."""
    log_bf10, rscale = test.get("log_bf10"), test.get("bf_rscale")
    if not isinstance(log_bf10, (int, float)) or isinstance(log_bf10, bool):
        return ""
    if not math.isfinite(log_bf10):
        return ""
    prior = f"JZS prior, r = {rscale:.3g}" if isinstance(rscale, (int, float)) else "JZS prior"
    return f"Bayes factor {bf_label(log_bf10)} ({prior}): {bf_sentence(None, log_bf10, against)}"
