"""Power by simulation for planning the numbers of participants and identities."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterable
from typing import Any, cast

import numpy as np
import pandas as pd
from scipy import special, stats

from analysis.mixed import COEFFICIENT, MixedFit, fit_lmm

DEFAULT_SEED = 20261128
DEFAULT_SIMS = 2000
DEFAULT_LMM_SIMS = 100


@dataclasses.dataclass(frozen=True)
class VarianceComponents:
    """Variances of a crossed rating model (lme4's VarCorr, on the scale of the ratings).

    ``participant`` and ``identity`` are random-intercept variances, ``residual`` the trial
    variance; the slope variances belong to the ai-minus-real effect, as in
    ``(1 + condition | participant) + (1 + condition | identity)``. Intercepts and slopes are
    simulated uncorrelated.
    """

    participant: float
    identity: float
    residual: float
    participant_slope: float = 0.0
    identity_slope: float = 0.0

    def __post_init__(self) -> None:
        """Reject negative or non-finite variances (and a zero residual variance)."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(
                    f"variance {field.name!r} must be a finite number >= 0, got {value!r}"
                )
        if self.residual <= 0:
            raise ValueError(f"variance 'residual' must be > 0, got {self.residual!r}")


# Trust (1-7) in the reference simulated study: its random-slopes LMM (fit_lmm on sim-small,
# as lmer(value ~ condition + (1 + condition | participant) + (1 + condition | identity))),
# a starting point when no pilot is at hand.
DEFAULT_COMPONENTS = VarianceComponents(
    participant=0.30, identity=0.15, residual=0.89, participant_slope=0.016, identity_slope=0.0055
)


def components_from_pilot(
    pilot: pd.DataFrame | MixedFit,
    dv: str = "value",
    condition: str = "condition",
    participant: str = "participant",
    identity: str = "identity",
    slopes: bool | str = "auto",
) -> VarianceComponents:
    """Variance components for a power simulation, from a pilot study's LMM.

    Parameters
    ----------
    pilot : pandas.DataFrame or MixedFit
        Either trial rows of one rating measure (fitted here with
        :func:`analysis.mixed.fit_lmm`), or an LMM already fitted on them.
    dv, condition, participant, identity, slopes
        Passed to :func:`analysis.mixed.fit_lmm` when ``pilot`` is a DataFrame;
        ``participant`` and ``identity`` name the groups in ``random_effects``.

    Returns
    -------
    VarianceComponents
        Intercept variances of participants and identities, the residual variance, and the
        slope variances when the fit has random slopes (else 0).

    Raises
    ------
    ValueError
        The fit is not a linear mixed model (a GLMM has no residual variance on the rating
        scale) or lacks a participant or identity variance.
    """
    if isinstance(pilot, pd.DataFrame):
        pilot = fit_lmm(
            pilot,
            dv=dv,
            condition=condition,
            participant=participant,
            identity=identity,
            slopes=slopes,
        )
    if not isinstance(pilot, MixedFit) or pilot.method != "lmm":
        kind = pilot.method if isinstance(pilot, MixedFit) else type(pilot).__name__
        raise ValueError(f"pilot must be trial rows or an LMM fit, got {kind!r}")
    variances = {(r["group"], r["term"]): r["variance"] for r in pilot.random_effects}
    for group in (participant, identity):
        if (group, "(Intercept)") not in variances:
            raise ValueError(f"pilot fit has no intercept variance for group {group!r}")
    return VarianceComponents(
        participant=variances[(participant, "(Intercept)")],
        identity=variances[(identity, "(Intercept)")],
        residual=cast(float, pilot.residual_variance),  # an LMM fit always has one
        participant_slope=variances.get((participant, COEFFICIENT), 0.0),
        identity_slope=variances.get((identity, COEFFICIENT), 0.0),
    )


def _check_design(n_participants: int, n_identities: int, replicates: int) -> None:
    """Raise ValueError naming a design number that cannot be simulated."""
    for name, value, least in (
        ("n_participants", n_participants, 2),
        ("n_identities", n_identities, 2),
        ("replicates", replicates, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")


def _ai_identities(n_identities: int) -> np.ndarray:
    """Boolean mask of the identities shown as AI headshots to list A (list B: the others)."""
    return np.arange(n_identities) < n_identities // 2


def simulate_trials(
    n_participants: int,
    n_identities: int,
    effect: float,
    components: VarianceComponents = DEFAULT_COMPONENTS,
    *,
    intercept: float = 4.0,
    replicates: int = 1,
    binary: bool = False,
    rng: np.random.Generator | int | None = None,
) -> pd.DataFrame:
    """Simulate one study's trial rows under a crossed random-effects model.

    Participant p alternates between lists A and B; list A sees the first half of the
    identities as AI headshots and the rest as real photographs, list B the reverse. Each
    participant sees each identity ``replicates`` times, always in the same condition::

        y_pir = mu + (delta + s_p + t_i) x_pi + a_p + b_i + e_pir

    with x = 1 for ai, a ~ N(0, participant), b ~ N(0, identity), s ~ N(0, participant_slope),
    t ~ N(0, identity_slope), e ~ N(0, residual) (Judd, Westfall & Kenny 2012). With
    ``binary=True`` the same linear predictor (without e) is a log-odds and the response a
    0/1 ``correct``.

    Parameters
    ----------
    n_participants, n_identities : int
        Design size (at least 2 each).
    effect : float
        delta, ai minus real (rating points, or log odds when binary).
    components : VarianceComponents
        Variances of the random effects.
    intercept : float
        mu, the mean of real photographs (rating points, or log odds when binary).
    replicates : int
        Presentations of each identity to each participant.
    binary : bool
        Simulate a 0/1 response instead of a rating.
    rng : numpy.random.Generator, int or None
        Random generator or seed.

    Returns
    -------
    pandas.DataFrame
        Columns ``participant``, ``list``, ``identity``, ``condition``, ``replicate`` and
        ``value`` (rating) or ``correct`` (binary); one row per trial.
    """
    _check_design(n_participants, n_identities, replicates)
    rng = np.random.default_rng(rng)
    c = components
    a = rng.normal(0, math.sqrt(c.participant), n_participants)
    s = rng.normal(0, math.sqrt(c.participant_slope), n_participants)
    b = rng.normal(0, math.sqrt(c.identity), n_identities)
    t = rng.normal(0, math.sqrt(c.identity_slope), n_identities)
    p_idx, i_idx, r_idx = (
        g.ravel()
        for g in np.meshgrid(
            np.arange(n_participants), np.arange(n_identities), np.arange(replicates), indexing="ij"
        )
    )
    list_b = p_idx % 2 == 1
    ai = _ai_identities(n_identities)[i_idx] != list_b
    eta = intercept + a[p_idx] + b[i_idx] + ai * (effect + s[p_idx] + t[i_idx])
    width_p, width_i = len(str(n_participants)), len(str(n_identities))
    frame = pd.DataFrame(
        {
            "participant": [f"p{k + 1:0{width_p}d}" for k in p_idx],
            "list": np.where(list_b, "B", "A"),
            "identity": [f"P{k + 1:0{width_i}d}" for k in i_idx],
            "condition": np.where(ai, "ai", "real"),
            "replicate": r_idx + 1,
        }
    )
    if binary:
        frame["correct"] = (rng.random(len(eta)) < special.expit(eta)).astype(int)
    else:
        frame["value"] = eta + rng.normal(0, math.sqrt(c.residual), len(eta))
    return frame


def simulate_participant_differences(
    n_participants: int,
    n_identities: int,
    effect: float,
    components: VarianceComponents,
    n_sims: int,
    *,
    replicates: int = 1,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Draw each participant's mean ai-minus-real difference for many simulated studies.

    Under the model of :func:`simulate_trials` the participant intercept cancels, and a
    participant of list A has the exact distribution

        d_p = delta + s_p + mean_{i in ai}(b_i + t_i) - mean_{i in real}(b_i) + e_p,
        e_p ~ N(0, residual (1/n_ai + 1/n_real) / replicates),

    (list B swaps the identity sets), so studies are simulated without drawing trials.

    Returns
    -------
    numpy.ndarray
        Shape (n_sims, n_participants).
    """
    _check_design(n_participants, n_identities, replicates)
    rng = np.random.default_rng(rng)
    c = components
    ai_a = _ai_identities(n_identities)
    n_ai, n_real = ai_a.sum(), (~ai_a).sum()
    b = rng.normal(0, math.sqrt(c.identity), (n_sims, n_identities))
    t = rng.normal(0, math.sqrt(c.identity_slope), (n_sims, n_identities))
    first = (b + t)[:, ai_a].mean(axis=1) - b[:, ~ai_a].mean(axis=1)  # list A
    second = (b + t)[:, ~ai_a].mean(axis=1) - b[:, ai_a].mean(axis=1)  # list B
    list_b = np.arange(n_participants) % 2 == 1
    identity_part = np.where(list_b, second[:, None], first[:, None])
    noise_sd = math.sqrt(c.residual * (1 / n_ai + 1 / n_real) / replicates)
    return (
        effect
        + identity_part
        + rng.normal(0, math.sqrt(c.participant_slope), (n_sims, n_participants))
        + rng.normal(0, noise_sd, (n_sims, n_participants))
    )


def analytic_power_paired_t(
    effect: float, sd_difference: float, n: int, alpha: float = 0.05
) -> float:
    """Power of a two-sided paired t test, from the noncentral t distribution.

    With d_z = effect / sd_difference and df = n - 1, power = P(|T| > t_{1-alpha/2, df})
    where T ~ t'(df, d_z sqrt(n)) (Cohen 1988). Exact when the participant differences are
    independent normal, i.e. with no identity variance.
    """
    return _power_paired_t_strict(effect / sd_difference, n, alpha)


def _power_row(rejections: int, n_sims: int, **fields: Any) -> dict[str, Any]:
    """A power estimate with its exact (Clopper-Pearson) 95 % Monte Carlo interval."""
    ci = stats.binomtest(int(rejections), n_sims).proportion_ci(
        confidence_level=0.95, method="exact"
    )
    return {
        **fields,
        "power": rejections / n_sims,
        "ci_low": float(ci.low),
        "ci_high": float(ci.high),
        "n_sims": n_sims,
    }


def _check_settings(effect: float, alpha: float, n_sims: int) -> None:
    """Raise ValueError naming a simulation setting that is out of range."""
    if not (isinstance(effect, (int, float)) and math.isfinite(effect)):
        raise ValueError(f"effect must be a finite number, got {effect!r}")
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
        raise ValueError(f"alpha must be between 0 and 1, got {alpha!r}")
    if isinstance(n_sims, bool) or not isinstance(n_sims, (int, np.integer)) or n_sims < 1:
        raise ValueError(f"n_sims must be an integer >= 1, got {n_sims!r}")


def power_paired_t(
    n_participants: int,
    n_identities: int,
    effect: float,
    components: VarianceComponents = DEFAULT_COMPONENTS,
    *,
    replicates: int = 1,
    alpha: float = 0.05,
    n_sims: int = DEFAULT_SIMS,
    rng: np.random.Generator | int | None = DEFAULT_SEED,
) -> dict[str, Any]:
    """Power of the paired t test on participant means, by simulation.

    The test is the primary by-participant test of the report: t = mean(d) / (sd(d) /
    sqrt(N)) on N - 1 df, two-sided at ``alpha``. Identity variance makes the participants'
    differences correlated within a list, which the simulation keeps (Judd, Westfall & Kenny
    2012) and the analytic formula ignores.

    Returns
    -------
    dict
        ``test`` ("paired_t"), ``n_participants``, ``n_identities``, ``power`` (share of
        simulated studies with p < alpha), ``ci_low``/``ci_high`` (exact 95 % binomial
        interval of the Monte Carlo estimate), ``n_sims``.
    """
    _check_settings(effect, alpha, n_sims)
    d = simulate_participant_differences(
        n_participants, n_identities, effect, components, n_sims, replicates=replicates, rng=rng
    )
    t = d.mean(axis=1) / (d.std(axis=1, ddof=1) / math.sqrt(n_participants))
    p = 2 * stats.t.sf(np.abs(t), n_participants - 1)
    return _power_row(
        int(np.sum(p < alpha)),
        n_sims,
        test="paired_t",
        n_participants=n_participants,
        n_identities=n_identities,
    )


def power_lmm(
    n_participants: int,
    n_identities: int,
    effect: float,
    components: VarianceComponents = DEFAULT_COMPONENTS,
    *,
    replicates: int = 1,
    alpha: float = 0.05,
    n_sims: int = DEFAULT_LMM_SIMS,
    rng: np.random.Generator | int | None = DEFAULT_SEED,
) -> dict[str, Any]:
    """Power of the crossed-random-effects LMM (Satterthwaite t test), by simulation.

    Each simulated study is drawn trial by trial (:func:`simulate_trials`) and fitted with
    :func:`analysis.mixed.fit_lmm`, with random slopes when the components have slope
    variance and intercepts only otherwise. About 0.05-0.5 s a study, so keep ``n_sims``
    modest.

    Returns
    -------
    dict
        As :func:`power_paired_t`, with ``test`` "lmm".
    """
    _check_settings(effect, alpha, n_sims)
    rng = np.random.default_rng(rng)
    slopes = "auto" if components.participant_slope or components.identity_slope else False
    rejections = 0
    for _ in range(n_sims):
        trials = simulate_trials(
            n_participants, n_identities, effect, components, replicates=replicates, rng=rng
        )
        rejections += fit_lmm(trials, slopes=slopes).p_value < alpha
    return _power_row(
        rejections, n_sims, test="lmm", n_participants=n_participants, n_identities=n_identities
    )


def power_table(
    participants: Iterable[int],
    identities: Iterable[int],
    effect: float,
    components: VarianceComponents = DEFAULT_COMPONENTS,
    *,
    replicates: int = 1,
    alpha: float = 0.05,
    n_sims: int = DEFAULT_SIMS,
    lmm: bool = False,
    lmm_sims: int = DEFAULT_LMM_SIMS,
    seed: int = DEFAULT_SEED,
) -> pd.DataFrame:
    """Simulated power over a grid of numbers of participants and identities.

    Parameters
    ----------
    participants, identities : iterable of int
        Numbers to cross (each at least 2).
    effect : float
        Expected ai-minus-real difference on the rating scale (e.g. -0.3).
    components : VarianceComponents
        Variances, e.g. from :func:`components_from_pilot`; default
        :data:`DEFAULT_COMPONENTS`.
    replicates : int
        Presentations of each identity to each participant.
    alpha : float
        Two-sided significance level.
    n_sims, lmm_sims : int
        Simulated studies per cell for the paired t test and for the LMM.
    lmm : bool
        Also estimate the LMM's power (slower).
    seed : int
        Each cell draws from ``numpy.random.default_rng([seed, N, I])``, so a cell's result
        does not depend on the rest of the grid.

    Returns
    -------
    pandas.DataFrame
        One row per cell and test: ``n_participants``, ``n_identities``, ``test``
        ("paired_t" or "lmm"), ``power``, ``ci_low``, ``ci_high`` (exact 95 % Monte Carlo
        interval), ``n_sims``, ``effect``, ``alpha``.

    References
    ----------
    Judd, C. M., Westfall, J. & Kenny, D. A. (2012). Treating stimuli as a random factor in
    social psychology. Journal of Personality and Social Psychology, 103(1), 54-69.
    Westfall, J., Kenny, D. A. & Judd, C. M. (2014). Statistical power and optimal design in
    experiments in which samples of participants respond to samples of stimuli. Journal of
    Experimental Psychology: General, 143(5), 2020-2045.
    """
    participants, identities = list(participants), list(identities)
    if not participants or not identities:
        raise ValueError("participants and identities must each list at least one number")
    rows = []
    for n_p in participants:
        for n_i in identities:
            _check_design(n_p, n_i, replicates)
            rng = np.random.default_rng([seed, n_p, n_i])
            rows.append(
                power_paired_t(
                    n_p,
                    n_i,
                    effect,
                    components,
                    replicates=replicates,
                    alpha=alpha,
                    n_sims=n_sims,
                    rng=rng,
                )
            )
            if lmm:
                rows.append(
                    power_lmm(
                        n_p,
                        n_i,
                        effect,
                        components,
                        replicates=replicates,
                        alpha=alpha,
                        n_sims=lmm_sims,
                        rng=rng,
                    )
                )
    table = pd.DataFrame(rows)
    table["effect"] = effect
    table["alpha"] = alpha
    return table[
        [
            "n_participants",
            "n_identities",
            "test",
            "power",
            "ci_low",
            "ci_high",
            "n_sims",
            "effect",
            "alpha",
        ]
    ]


# ----------------------------------------------------------------------------- sample size

# power.t.test searches n in [2, 1e7]; so does sample_size_paired_t.
MIN_PAIRS = 2
MAX_PAIRS = 10_000_000
TESTS = ("paired_t", "lmm", "glmm")
# Seed offsets keeping the mixed-model streams apart from the paired t test's [seed, N, I].
MAX_STUDIES = {"paired_t": 200_000, "lmm": 5_000, "glmm": 5_000}
_TEST_STREAM = {"paired_t": (), "lmm": (1,), "glmm": (2,)}


def _power_paired_t_strict(d_z: float, n: float, alpha: float) -> float:
    """R's strict two-sided p.body of power.t.test(type = "paired"), for fractional n too.

    nu = max(1e-7, n - 1); power = P(T > q) + P(T < -q), T ~ t'(nu, sqrt(n) d_z),
    q = qt(alpha / 2, nu, lower = FALSE).
    """
    nu = max(1e-7, n - 1)
    nc = math.sqrt(n) * abs(d_z)
    q = stats.t.isf(alpha / 2, nu)
    upper, lower = float(stats.nct.sf(q, nu, nc)), float(stats.nct.cdf(-q, nu, nc))
    # SciPy's noncentral t returns NaN for some far tails; below 1e-15 they do not count.
    if not math.isfinite(lower) and stats.norm.cdf(-nc) < 1e-15:
        lower = 0.0
    if not math.isfinite(upper) and stats.norm.cdf(-nc) < 1e-15:
        upper = 1.0
    if not (math.isfinite(upper) and math.isfinite(lower)):
        raise ValueError(f"the noncentral t could not be evaluated (n {n:g}, d_z {d_z:g})")
    return min(1.0, upper + lower)


def _check_paired_inputs(effect: float, sd_difference: float, alpha: float) -> float:
    """Validate a raw difference, its SD and alpha; return |d_z|."""
    for name, value in (("effect", effect), ("sd_difference", sd_difference)):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    if sd_difference <= 0:
        raise ValueError(f"sd_difference must be > 0, got {sd_difference!r}")
    if effect == 0:
        raise ValueError("effect must not be 0: no sample size finds a difference of nothing")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha!r}")
    return abs(effect) / sd_difference


def power_for_n_paired_t(
    effect: float, sd_difference: float, n: float, alpha: float = 0.05
) -> float:
    """Power of the two-sided paired t test with n pairs, as R's power.t.test(strict = TRUE).

    ``power.t.test(n = n, delta = effect, sd = sd_difference, sig.level = alpha,
    type = "paired", strict = TRUE)$power``: both tails of the noncentral t with n - 1 df and
    noncentrality sqrt(n) |effect| / sd_difference. n may be fractional (>= 2).
    """
    d_z = _check_paired_inputs(effect, sd_difference, alpha)
    if isinstance(n, bool) or not isinstance(n, (int, float, np.integer)) or not n >= MIN_PAIRS:
        raise ValueError(f"n must be a number >= {MIN_PAIRS}, got {n!r}")
    return _power_paired_t_strict(d_z, float(n), alpha)


@dataclasses.dataclass(frozen=True)
class PairedSampleSize:
    """The pairs a paired t test needs for a target power (see :func:`sample_size_paired_t`)."""

    n: float  # the fractional root, as power.t.test(...)$n reports it
    n_required: int  # ceiling(n): the participants to recruit (after exclusions)
    power_at_n_required: float
    effect: float
    sd_difference: float
    d_z: float
    alpha: float
    target_power: float
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict."""
        return dataclasses.asdict(self)


def sample_size_paired_t(
    effect: float, sd_difference: float = 1.0, power: float = 0.8, alpha: float = 0.05
) -> PairedSampleSize:
    """Pairs needed by a two-sided paired t test, as R's power.t.test(strict = TRUE).

    Solves power(n) = ``power`` for n with the strict two-sided noncentral-t power of
    :func:`power_for_n_paired_t` (R: ``power.t.test(delta = effect, sd = sd_difference,
    sig.level = alpha, power = power, type = "paired", strict = TRUE)$n``). R solves with
    ``uniroot(tol = .Machine$double.eps^0.25)``, so its n is within about 1e-4 of the exact
    root returned here (tolerance 1e-10). Give a standardised effect d_z as ``effect`` with
    ``sd_difference = 1``.

    Parameters
    ----------
    effect : float
        Expected mean of the participants' ai-minus-real differences (its sign does not
        matter: the test is two-sided).
    sd_difference : float
        Expected SD of those differences (> 0).
    power : float
        Target power, above alpha and below 1.
    alpha : float
        Two-sided significance level.

    Returns
    -------
    PairedSampleSize
        ``n`` (fractional root), ``n_required`` (its ceiling) and the power there. When two
        pairs already reach the target, ``n`` is 2 and ``note`` says so (R would extrapolate
        below 2 pairs, which a paired t test cannot use).

    Raises
    ------
    ValueError
        A zero or non-finite effect, an SD <= 0, alpha or power out of range, or an effect so
        small that more than 10,000,000 pairs would be needed.

    References
    ----------
    Cohen, J. (1988). Statistical power analysis for the behavioral sciences (2nd ed.).
    R Core Team. power.t.test, package stats.
    """
    d_z = _check_paired_inputs(effect, sd_difference, alpha)
    if isinstance(power, bool) or not isinstance(power, (int, float)) or not alpha < power < 1:
        raise ValueError(f"power must be above alpha ({alpha:g}) and below 1, got {power!r}")
    note = ""
    if _power_paired_t_strict(d_z, MIN_PAIRS, alpha) >= power:
        n = float(MIN_PAIRS)
        note = (
            f"{MIN_PAIRS} pairs already give power {_power_paired_t_strict(d_z, 2, alpha):.3f}; "
            "a paired t test needs at least 2"
        )
    elif _power_paired_t_strict(d_z, MAX_PAIRS, alpha) < power:
        raise ValueError(
            f"effect too small: more than {MAX_PAIRS:,} pairs would be needed (d_z = {d_z:.3g})"
        )
    else:
        from scipy.optimize import brentq

        low, high = float(MIN_PAIRS), float(2 * MIN_PAIRS)
        while _power_paired_t_strict(d_z, high, alpha) < power:  # stays where nct is finite
            low, high = high, min(2 * high, float(MAX_PAIRS))
        n = float(
            brentq(
                lambda x: _power_paired_t_strict(d_z, x, alpha) - power,
                low,
                high,
                xtol=1e-10,
                rtol=1e-14,
            )
        )
    n_required = max(MIN_PAIRS, math.ceil(n - 1e-9))
    return PairedSampleSize(
        n=n,
        n_required=n_required,
        power_at_n_required=_power_paired_t_strict(d_z, n_required, alpha),
        effect=float(effect),
        sd_difference=float(sd_difference),
        d_z=d_z,
        alpha=float(alpha),
        target_power=float(power),
        note=note,
    )


def analytic_curve(
    effect: float, sd_difference: float, participants: Iterable[int], alpha: float = 0.05
) -> pd.DataFrame:
    """Power of the paired t test (R's strict power.t.test) at each number of pairs.

    Returns
    -------
    pandas.DataFrame
        ``n_participants`` and ``power``, one row per number (sorted, without repeats).
    """
    numbers = sorted({int(n) for n in participants})
    if not numbers:
        raise ValueError("participants must list at least one number")
    rows = [
        {"n_participants": n, "power": power_for_n_paired_t(effect, sd_difference, n, alpha)}
        for n in numbers
    ]
    return pd.DataFrame(rows, columns=["n_participants", "power"])


def _mixed_power(
    n_participants: int,
    n_identities: int,
    effect: float,
    components: VarianceComponents,
    *,
    binary: bool,
    intercept: float,
    replicates: int,
    alpha: float,
    n_sims: int,
    rng: np.random.Generator | int | None,
) -> dict[str, Any]:
    """Simulate and fit n_sims studies with fit_lmm (ratings) or fit_glmm (0/1 responses).

    Slopes are fitted ("auto") when the components have slope variance, else intercepts only.
    A study whose fit fails (ValueError, e.g. a simulated identity with one response value)
    counts as not rejecting; ``failed`` counts them.
    """
    from analysis.mixed import fit_glmm

    _check_settings(effect, alpha, n_sims)
    rng = np.random.default_rng(rng)
    slopes = "auto" if components.participant_slope or components.identity_slope else False
    fit = fit_glmm if binary else fit_lmm
    rejections = failed = 0
    for _ in range(n_sims):
        trials = simulate_trials(
            n_participants,
            n_identities,
            effect,
            components,
            intercept=intercept,
            replicates=replicates,
            binary=binary,
            rng=rng,
        )
        try:
            rejections += fit(trials, slopes=slopes).p_value < alpha
        except ValueError:
            failed += 1
    row = _power_row(
        rejections,
        n_sims,
        test="glmm" if binary else "lmm",
        n_participants=n_participants,
        n_identities=n_identities,
    )
    row["failed"] = failed
    return row


def power_glmm(
    n_participants: int,
    n_identities: int,
    effect: float,
    components: VarianceComponents = DEFAULT_COMPONENTS,
    *,
    intercept: float = 0.0,
    replicates: int = 1,
    alpha: float = 0.05,
    n_sims: int = DEFAULT_LMM_SIMS,
    rng: np.random.Generator | int | None = DEFAULT_SEED,
) -> dict[str, Any]:
    """Power of the logistic GLMM (Wald z) for a 0/1 outcome, by simulation.

    ``effect`` and ``intercept`` are log odds (ai minus real, and real photographs' log odds);
    the components' intercept and slope variances are on the logit scale (the residual
    variance is not used). Each study is drawn with :func:`simulate_trials` (``binary=True``)
    and fitted with :func:`analysis.mixed.fit_glmm`.

    Returns
    -------
    dict
        As :func:`power_paired_t`, with ``test`` "glmm" and ``failed`` (fits that failed,
        counted as not rejecting).
    """
    return _mixed_power(
        n_participants,
        n_identities,
        effect,
        components,
        binary=True,
        intercept=intercept,
        replicates=replicates,
        alpha=alpha,
        n_sims=n_sims,
        rng=rng,
    )


def _point(
    test: str,
    n_participants: int,
    n_identities: int,
    effect: float,
    components: VarianceComponents,
    *,
    intercept: float | None,
    replicates: int,
    alpha: float,
    n_sims: int,
    seed: int,
) -> dict[str, Any]:
    """One point of a power curve, drawn from its own stream [seed, N, I, (test)]."""
    _check_design(n_participants, n_identities, replicates)
    rng = np.random.default_rng([seed, n_participants, n_identities, *_TEST_STREAM[test]])
    if test == "paired_t":
        row = power_paired_t(
            n_participants,
            n_identities,
            effect,
            components,
            replicates=replicates,
            alpha=alpha,
            n_sims=n_sims,
            rng=rng,
        )
        row["failed"] = 0
        return row
    binary = test == "glmm"
    return _mixed_power(
        n_participants,
        n_identities,
        effect,
        components,
        binary=binary,
        intercept=(0.0 if binary else 4.0) if intercept is None else intercept,
        replicates=replicates,
        alpha=alpha,
        n_sims=n_sims,
        rng=rng,
    )


@dataclasses.dataclass(frozen=True)
class SimulatedSampleSize:
    """Result of :func:`sample_size_simulated`."""

    test: str
    target_power: float
    alpha: float
    effect: float
    n_sims: int
    curve: pd.DataFrame  # n_participants, n_identities, power, ci_low, ci_high, n_sims, failed
    required: pd.DataFrame  # per n_identities: n_required, n_confident, power, ci_low, ci_high
    studies_simulated: int
    notes: tuple[str, ...]
    complete: bool = True


def _required(curve: pd.DataFrame, target: float) -> dict[str, Any]:
    """The smallest N from which every simulated N has power >= target (and CI low >= it)."""

    def first_from(ok: np.ndarray) -> int | None:
        # smallest index from which all are True
        if not ok.size or not ok[-1]:
            return None
        k = len(ok)
        while k > 0 and ok[k - 1]:
            k -= 1
        return k

    curve = curve.sort_values("n_participants").reset_index(drop=True)
    at = first_from(curve["power"].to_numpy() >= target)
    sure = first_from(curve["ci_low"].to_numpy() >= target)
    found: dict[str, Any] = {
        "n_required": None,
        "n_confident": None,
        "power": None,
        "ci_low": None,
        "ci_high": None,
    }
    if at is not None:
        row = curve.iloc[at]
        found.update(
            n_required=int(row["n_participants"]),
            power=float(row["power"]),
            ci_low=float(row["ci_low"]),
            ci_high=float(row["ci_high"]),
        )
    if sure is not None:
        found["n_confident"] = int(curve.iloc[sure]["n_participants"])
    return found


def sample_size_simulated(
    effect: float,
    components: VarianceComponents = DEFAULT_COMPONENTS,
    *,
    identities: Iterable[int] = (24,),
    participants: Iterable[int] | None = None,
    target_power: float = 0.8,
    test: str = "lmm",
    intercept: float | None = None,
    replicates: int = 1,
    alpha: float = 0.05,
    n_sims: int | None = None,
    refine: int = 3,
    max_studies: int | None = None,
    max_seconds: float | None = None,
    seed: int = DEFAULT_SEED,
) -> SimulatedSampleSize:
    """Participants needed for a target power of a mixed model (or the paired t), by simulation.

    For each number of identities, the power is simulated at each number of participants of
    the grid ``participants``; then up to ``refine`` more numbers are tried by bisection
    between the largest grid number below the target and the smallest above it. Every point
    draws from its own random stream ``[seed, N, I, test]``, so a point's estimate does not
    depend on the grid or the search order, and a call is reproducible.

    The answer for each number of identities is ``n_required``: the smallest simulated N
    from which every larger simulated N has estimated power >= target; ``n_confident`` is the
    same with the lower end of the 95 % Monte Carlo interval. Both are simulated estimates:
    with ``n_sims`` studies a point's Monte Carlo SE is sqrt(p (1 - p) / n_sims) (0.04 at
    p = 0.8 with 100 studies), so a neighbouring N may do as well; the curve shows how much.

    Parameters
    ----------
    effect : float
        ai minus real: rating points (lmm, paired_t) or log odds (glmm).
    components : VarianceComponents
        Variances, e.g. from :func:`components_from_pilot` (logit scale for glmm).
    identities : iterable of int
        Numbers of identities (each >= 2).
    participants : iterable of int or None
        Grid of numbers of participants (each >= 2); default 8 numbers from 10 to 200.
        Simulated in the order given, so with ``max_seconds`` put the most telling first.
    target_power : float
        Between alpha and 1.
    test : {"lmm", "glmm", "paired_t"}
        The model whose power is simulated.
    intercept : float or None
        Mean of real photographs (default 4 rating points, or log odds 0 for glmm).
    replicates, alpha
        As :func:`power_table`.
    n_sims : int or None
        Simulated studies per point (default 100 for the mixed models, 2000 for paired_t).
    refine : int
        Extra bisection points per number of identities (0 for the grid only).
    max_studies : int or None
        Bound on the simulated studies of the whole call (grid and refinement); a larger
        request raises ValueError before anything is simulated. Default 5,000 for the mixed
        models, which fit every study (about 0.02-0.3 s each), and 200,000 for the paired t
        test, whose studies are drawn without trials.
    max_seconds : float or None
        Stop starting new points after this many seconds (a bound for a web request). The
        points simulated are the same as without the bound (each has its own stream); the
        points left out are named in ``notes`` and ``complete`` is False. The first point
        always runs.
    seed : int
        Base seed.

    Returns
    -------
    SimulatedSampleSize
        ``curve`` (every simulated point with its exact 95 % Monte Carlo interval),
        ``required`` (one row per number of identities), ``studies_simulated`` and
        ``notes`` (target not reached, answer within simulation error, failed fits, points
        left out by ``max_seconds``) and ``complete``.
    """
    if test not in TESTS:
        raise ValueError(f"test must be one of {', '.join(TESTS)}, got {test!r}")
    if n_sims is None:
        n_sims = DEFAULT_SIMS if test == "paired_t" else DEFAULT_LMM_SIMS
    _check_settings(effect, alpha, n_sims)
    if (
        isinstance(target_power, bool)
        or not isinstance(target_power, (int, float))
        or not alpha < target_power < 1
    ):
        raise ValueError(
            f"target_power must be above alpha ({alpha:g}) and below 1, got {target_power!r}"
        )
    if isinstance(refine, bool) or not isinstance(refine, int) or refine < 0:
        raise ValueError(f"refine must be an integer >= 0, got {refine!r}")
    # in the order given (first come, first simulated: it matters only with max_seconds)
    grid = list(dict.fromkeys(participants)) if participants is not None else default_grid()
    counts = sorted(set(identities))
    if not grid or not counts:
        raise ValueError("participants and identities must each list at least one number")
    for n_p in grid:
        for n_i in counts:
            _check_design(n_p, n_i, replicates)
    if max_studies is None:
        max_studies = MAX_STUDIES[test]
    planned = (len(grid) + refine) * len(counts) * n_sims
    if planned > max_studies:
        raise ValueError(
            f"{len(grid)} numbers of participants (+{refine} refinements) x {len(counts)} "
            f"of identities x {n_sims} simulations = {planned:,} simulated studies, more than "
            f"the limit of {max_studies:,}: use fewer numbers or simulations"
        )

    started = time.monotonic()
    skipped: list[tuple[int, int]] = []
    rows: list[dict[str, Any]] = []
    done: dict[int, dict[str, Any]] = {}

    def out_of_time() -> bool:
        # the first point always runs, so there is an answer to show
        late = max_seconds is not None and time.monotonic() - started > max_seconds
        return late and bool(rows or done)

    def point(n_p: int, n_i: int) -> dict[str, Any]:
        return _point(
            test,
            n_p,
            n_i,
            effect,
            components,
            intercept=intercept,
            replicates=replicates,
            alpha=alpha,
            n_sims=n_sims,
            seed=seed,
        )

    required: list[dict[str, Any]] = []
    notes: list[str] = []
    for n_i in counts:
        done.clear()
        for n_p in grid:
            if out_of_time():
                skipped.append((n_p, n_i))
            else:
                done[n_p] = point(n_p, n_i)
        if not done:
            continue
        for _ in range(refine if not skipped else 0):
            if out_of_time():
                break
            # bisect between the answer so far and the simulated N just below it
            ordered = sorted(done)
            found = _required(pd.DataFrame([done[n] for n in ordered]), target_power)
            if found["n_required"] is None or found["n_required"] == ordered[0]:
                break
            high = found["n_required"]
            low = ordered[ordered.index(high) - 1]
            if high - low <= 1:
                break
            middle = (low + high) // 2
            done[middle] = point(middle, n_i)
        curve = pd.DataFrame([done[n] for n in sorted(done)])
        rows.extend(curve.to_dict("records"))
        found = _required(curve, target_power)
        required.append({"n_identities": n_i, **found})
        if found["n_required"] is None:
            notes.append(
                f"{n_i} identities: the target power {target_power:g} is not reached by "
                f"{max(done)} participants (estimated power {done[max(done)]['power']:.2f})"
            )
        elif found["ci_low"] is not None and found["ci_low"] < target_power:
            notes.append(
                f"{n_i} identities: at {found['n_required']} participants the 95 % Monte Carlo "
                f"interval [{found['ci_low']:.2f}, {found['ci_high']:.2f}] includes the target; "
                "more simulations would narrow it"
            )
        failed = int(curve["failed"].sum())
        if failed:
            notes.append(
                f"{n_i} identities: {failed} simulated fits failed and count as not significant"
            )
    if skipped:
        notes.append(
            f"stopped after {max_seconds:g} s: not simulated: "
            + ", ".join(f"{n_p} participants x {n_i} identities" for n_p, n_i in skipped)
        )
    columns = ["n_participants", "n_identities", "power", "ci_low", "ci_high", "n_sims", "failed"]
    table = pd.DataFrame(rows, columns=columns)
    return SimulatedSampleSize(
        test=test,
        target_power=float(target_power),
        alpha=float(alpha),
        effect=float(effect),
        n_sims=n_sims,
        curve=table,
        required=pd.DataFrame(required),
        studies_simulated=int(table["n_sims"].sum()),
        notes=tuple(notes),
        complete=not skipped,
    )


def default_grid(low: int = 10, high: int = 200, points: int = 8) -> list[int]:
    """About evenly spaced even numbers of participants from ``low`` to ``high`` (both lists
    of the counterbalanced design equally filled)."""
    values = np.linspace(low, high, points)
    return sorted({max(2, int(2 * round(v / 2))) for v in values})


def differences_from_pilot(
    pilot: pd.DataFrame,
    dv: str = "value",
    condition: str = "condition",
    participant: str = "participant",
) -> tuple[float, float, int]:
    """Mean and SD of the participants' ai-minus-real differences of means in a pilot.

    Only participants with rows in both conditions count. These are the ``delta`` and ``sd``
    of ``power.t.test(type = "paired")`` as the pilot estimates them; a pilot's effect is a
    noisy guess (Albers & Lakens 2018), so prefer the smallest effect that would matter.

    Returns
    -------
    tuple
        (mean difference, SD of the differences, number of participants)

    Raises
    ------
    ValueError
        Fewer than 3 participants with both conditions, or differences with no spread.
    """
    for column in (dv, condition, participant):
        if column not in pilot.columns:
            raise ValueError(f"pilot has no column {column!r}")
    values = pd.to_numeric(pilot[dv], errors="coerce")
    if values.isna().any():
        raise ValueError(f"pilot column {dv!r} has missing or non-numeric values")
    means = (
        pilot.assign(**{dv: values})
        .groupby([participant, condition], observed=True)[dv]
        .mean()
        .unstack(condition)
    )
    if not {"ai", "real"} <= set(means.columns):
        raise ValueError("pilot needs rows in both conditions, ai and real")
    differences = (means["ai"] - means["real"]).dropna()
    if len(differences) < 3:
        raise ValueError(
            f"pilot has {len(differences)} participant(s) with both conditions; at least 3 needed"
        )
    sd = float(differences.std(ddof=1))
    if not sd > 0:
        raise ValueError("the pilot's participant differences have no spread")
    return float(differences.mean()), sd, int(len(differences))


def components_for_sd(
    sd_difference: float,
    n_identities: int,
    base: VarianceComponents = DEFAULT_COMPONENTS,
    replicates: int = 1,
) -> VarianceComponents:
    """``base`` with the residual variance that gives a participant's ai-minus-real mean
    difference the SD ``sd_difference`` (identity variance aside).

    Under :func:`simulate_trials` that difference has variance (identities aside)
    participant_slope + residual (1/n_ai + 1/n_real) / replicates, so a simulation of the mixed
    model agrees with the SD a paired t test calculation was given.

    Raises
    ------
    ValueError
        ``sd_difference`` not above the SD the participant slope variance alone gives.
    """
    _check_design(2, n_identities, replicates)
    if not (isinstance(sd_difference, (int, float)) and math.isfinite(sd_difference)):
        raise ValueError(f"sd_difference must be a finite number, got {sd_difference!r}")
    ai = _ai_identities(n_identities)
    share = (1 / ai.sum() + 1 / (~ai).sum()) / replicates
    left = sd_difference**2 - base.participant_slope
    if left <= 0:
        raise ValueError(
            f"sd_difference must be above {math.sqrt(base.participant_slope):.3g}, the SD the "
            "participants' slope variance alone gives"
        )
    return dataclasses.replace(base, residual=left / share)
