"""Signal detection: hit and false-alarm rates, d' and c with the log-linear correction."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

# Wichura's AS 241 coefficients, highest power first, as in R's nmath/qnorm.c.
_CENTRAL = (
    (
        2509.0809287301226727,
        33430.575583588128105,
        67265.770927008700853,
        45921.953931549871457,
        13731.693765509461125,
        1971.5909503065514427,
        133.14166789178437745,
        3.387132872796366608,
    ),
    (
        5226.495278852545925,
        28729.085735721942674,
        39307.89580009271061,
        21213.794301586595867,
        5394.1960214247511077,
        687.1870074920579083,
        42.313330701600911252,
        1.0,
    ),
)
_TAIL = (
    (
        7.7454501427834140764e-4,
        0.0227238449892691845833,
        0.24178072517745061177,
        1.27045825245236838258,
        3.64784832476320460504,
        5.7694972214606914055,
        4.6303378461565452959,
        1.42343711074968357734,
    ),
    (
        1.05075007164441684324e-9,
        5.475938084995344946e-4,
        0.0151986665636164571966,
        0.14810397642748007459,
        0.68976733498510000455,
        1.6763848301838038494,
        2.05319162663775882187,
        1.0,
    ),
)
_FAR_TAIL = (
    (
        2.01033439929228813265e-7,
        2.71155556874348757815e-5,
        0.0012426609473880784386,
        0.026532189526576123093,
        0.29656057182850489123,
        1.7848265399172913358,
        5.4637849111641143699,
        6.6579046435011037772,
    ),
    (
        2.04426310338993978564e-15,
        1.4215117583164458887e-7,
        1.8463183175100546818e-5,
        7.868691311456132591e-4,
        0.0148753612908506148525,
        0.13692988092273580531,
        0.59983220655588793769,
        1.0,
    ),
)


def _horner(coefficients: tuple[float, ...], r: float) -> float:
    """Evaluate a polynomial in the order R's C code does: (((c0 * r + c1) * r + c2) ...)."""
    value = coefficients[0]
    for c in coefficients[1:]:
        value = value * r + c
    return value


def _qnorm_scalar(p: float) -> float:
    """Normal quantile by Wichura's AS 241, operation for operation as R's qnorm (R 4.x)."""
    if not 0 < p < 1:
        return -math.inf if p == 0 else (math.inf if p == 1 else math.nan)
    q = p - 0.5
    if abs(q) <= 0.425:
        r = 0.180625 - q * q
        return q * _horner(_CENTRAL[0], r) / _horner(_CENTRAL[1], r)
    r = (0.5 - p + 0.5) if q > 0 else p  # min(p, 1 - p), written as R writes it
    r = math.sqrt(-math.log(r))  # libm's log, as R's, not numpy's vectorised one
    if r <= 5.0:
        r += -1.6
        val = _horner(_TAIL[0], r) / _horner(_TAIL[1], r)
    else:
        r += -5.0
        val = _horner(_FAR_TAIL[0], r) / _horner(_FAR_TAIL[1], r)
    return -val if q < 0 else val


def qnorm(p) -> np.ndarray:
    """Quantiles of the standard normal distribution, bit for bit as R's ``qnorm``.

    Parameters
    ----------
    p : array_like
        Probabilities.

    Returns
    -------
    numpy.ndarray
        z with P(Z <= z) = p.

    Notes
    -----
    scipy's ``norm.ppf`` agrees to about 1e-15 but not to the last bit. That matters here:
    R's Wilcoxon test treats d' differences as zero or tied only when they are equal as doubles,
    so d' must be computed with the same arithmetic for the ranks, V and p to match R.

    References
    ----------
    Wichura, M. J. (1988). Algorithm AS 241: The percentage points of the normal distribution.
    Applied Statistics, 37, 477-484.
    """
    values = np.asarray(p, dtype=float)
    return np.array([_qnorm_scalar(float(v)) for v in values.ravel()]).reshape(values.shape)


def dprime(hits, n_signal, false_alarms, n_noise) -> pd.DataFrame:
    """d' and criterion c from counts, with the log-linear correction.

    Parameters
    ----------
    hits, n_signal : array_like of int
        "Yes" answers on signal trials and the number of signal trials.
    false_alarms, n_noise : array_like of int
        "Yes" answers on noise trials and the number of noise trials.

    Returns
    -------
    pandas.DataFrame
        ``hit_rate``, ``fa_rate`` (raw proportions; NaN without trials of that kind),
        ``hit_rate_corrected`` = (hits + 0.5) / (n_signal + 1), ``fa_rate_corrected`` likewise,
        ``d_prime`` = z(H) - z(F) and ``criterion`` = -(z(H) + z(F)) / 2 on the corrected rates
        (NaN when a cell has no signal or no noise trials: the rate is then not measured).

    Notes
    -----
    The log-linear correction (Hautus, 1995) adds 0.5 to each count and 1 to each total, so rates
    of 0 or 1 (e.g. all hits) give finite d' with less bias than replacing them by 1/(2N).
    z is `qnorm` (R's algorithm), and c = -0.5 * (z(H) + z(F)) as R's reference script writes it.

    References
    ----------
    Hautus, M. J. (1995). Corrections for extreme proportions and their biasing effects on
    estimated values of d'. Behavior Research Methods, 27, 46-51.
    Macmillan, N. A., & Creelman, C. D. (2005). Detection theory: A user's guide (2nd ed.).
    """
    hits, n_signal, false_alarms, n_noise = (
        np.asarray(a, dtype=float) for a in (hits, n_signal, false_alarms, n_noise)
    )
    if (
        np.any(hits > n_signal)
        or np.any(false_alarms > n_noise)
        or np.any(np.concatenate([hits, n_signal, false_alarms, n_noise]) < 0)
    ):
        raise ValueError(
            "counts must satisfy 0 <= hits <= n_signal and 0 <= false_alarms <= n_noise"
        )
    with np.errstate(invalid="ignore", divide="ignore"):
        hit_rate = np.where(n_signal > 0, hits / n_signal, np.nan)
        fa_rate = np.where(n_noise > 0, false_alarms / n_noise, np.nan)
    h = (hits + 0.5) / (n_signal + 1)
    f = (false_alarms + 0.5) / (n_noise + 1)
    zh, zf = qnorm(h), qnorm(f)
    measured = (n_signal > 0) & (n_noise > 0)
    return pd.DataFrame(
        {
            "hit_rate": hit_rate,
            "fa_rate": fa_rate,
            "hit_rate_corrected": h,
            "fa_rate_corrected": f,
            "d_prime": np.where(measured, zh - zf, np.nan),
            "criterion": np.where(measured, -0.5 * (zh + zf), np.nan),
        }
    )


def sdt_table(
    data: pd.DataFrame,
    response: str,
    signal: str,
    subject: str = "participant",
    within: str | None = "condition",
) -> pd.DataFrame:
    """Signal-detection measures per subject (and condition) from trial rows.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per trial.
    response : str
        Column holding 1 when the answer was "signal" (match: same person; detect: AI), else 0.
    signal : str
        Column holding 1 on signal trials (match: ``is_match``; detect: condition is ai).
    subject : str
        Unit of analysis, e.g. ``participant`` or ``identity``.
    within : str or None
        Column splitting each subject's trials (``condition`` for match); None for one cell per
        subject (detect, where the condition is the signal).

    Returns
    -------
    pandas.DataFrame
        ``subject`` [, ``within``], ``n_signal``, ``n_noise``, ``hits``, ``false_alarms`` and the
        columns of `dprime`.
    """
    keys = [subject] + ([within] if within else [])
    frame = pd.DataFrame({k: data[k] for k in keys})
    frame["signal"] = data[signal].astype(float) == 1
    frame["yes"] = data[response].astype(float) == 1
    frame["hit"] = frame["signal"] & frame["yes"]
    frame["fa"] = ~frame["signal"] & frame["yes"]
    frame["noise"] = ~frame["signal"]
    counts = (
        frame.groupby(keys, sort=True)
        .agg(
            n_signal=("signal", "sum"),
            n_noise=("noise", "sum"),
            hits=("hit", "sum"),
            false_alarms=("fa", "sum"),
        )
        .astype(np.int64)
        .reset_index()
    )
    measures = dprime(counts["hits"], counts["n_signal"], counts["false_alarms"], counts["n_noise"])
    return pd.concat([counts, measures], axis=1)


def match_sdt(trials: pd.DataFrame, subject: str = "participant") -> pd.DataFrame:
    """Recognition (match block) d' and c per subject and condition: signal = same identity.

    Returns the columns of `sdt_table` with ``condition``.
    """
    rows = trials[
        (trials["task"] == "match")
        & (trials["measure"] == "same")
        & (trials["attention_check"] == 0)
    ]
    rows = rows.assign(response=rows["value_number"])
    return sdt_table(rows, "response", "is_match", subject=subject, within="condition")


def detect_sdt(trials: pd.DataFrame, subject: str = "participant") -> pd.DataFrame:
    """AI detection (detect block) d' and c per subject: signal = an AI headshot, yes = "ai".

    Returns the columns of `sdt_table` (no condition column).
    """
    rows = trials[
        (trials["task"] == "detect")
        & (trials["measure"] == "source")
        & (trials["attention_check"] == 0)
    ]
    rows = rows.assign(
        response=(rows["value"] == "ai").astype(float),
        is_ai=(rows["condition"] == "ai").astype(float),
    )
    return sdt_table(rows, "response", "is_ai", subject=subject, within=None)


def memory_sdt(trials: pd.DataFrame, subject: str = "participant") -> pd.DataFrame:
    """Memory (recognise block) d' and c per subject and encoding condition.

    Signal = a studied identity (a target), yes = "met before" (measure ``old`` = 1). Targets
    are split by the condition they were studied in (``condition`` real or ai); foils (empty
    condition) were never studied, so each condition's false-alarm rate is the subject's one
    rate over all foils: d'(real) = z(H real) - z(F), d'(ai) = z(H ai) - z(F), with the
    log-linear correction of `dprime`.

    Returns the columns of `sdt_table` with ``condition``.
    """
    rows = trials[
        (trials["task"] == "recognise")
        & (trials["measure"] == "old")
        & (trials["attention_check"] == 0)
    ]
    rows = rows.assign(response=rows["value_number"])
    targets = rows[rows["condition"].isin(["real", "ai"])].assign(studied=1.0)
    foils = rows[~rows["condition"].isin(["real", "ai"])].assign(studied=0.0)
    # Each condition's cell holds its targets and every foil of the subject.
    parts = [targets]
    for condition in ("ai", "real"):
        # Only subjects with targets in this condition get a cell (and so its foils).
        having = set(targets.loc[targets["condition"] == condition, subject])
        parts.append(foils[foils[subject].isin(having)].assign(condition=condition))
    cells = pd.concat(parts, ignore_index=True)
    if cells.empty:
        cells = rows.assign(studied=pd.Series(dtype=float))
    return sdt_table(cells, "response", "studied", subject=subject, within="condition")
