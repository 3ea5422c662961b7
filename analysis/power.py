"""Power by simulation for planning the numbers of participants and identities."""

from __future__ import annotations

import dataclasses
import math
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
    df = n - 1
    nc = effect / sd_difference * math.sqrt(n)
    crit = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))


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
