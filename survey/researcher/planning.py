"""Sample-size planning for the researcher workspace: the numbers and the power-curve chart.

The statistics are analysis.power's; this module bounds them for a web request (a few
simulated studies, a time limit) and lays out the chart as numbers the template draws as SVG.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

from survey.i18n import gettext

if TYPE_CHECKING:
    import pandas as pd

    from analysis.power import PairedSampleSize, SimulatedSampleSize

# Bounds of the mixed-model simulation in a web request (the CLI has none of these).
WEB_SIMS = 30  # simulated studies per number of participants
WEB_POINTS = 5  # numbers of participants simulated
WEB_SECONDS = 20.0  # no new number of participants is started after this
WEB_MAX_TRIALS = 6_000  # participants x identities of one simulated study
WEB_MAX_IDENTITIES = 200
WEB_MAX_PARTICIPANTS = 600
CURVE_POINTS = 40


@dataclasses.dataclass
class Pilot:
    """What a study's data so far say about one rating scale."""

    measure: str
    rows: pd.DataFrame
    mean_difference: float
    sd_difference: float
    n_participants: int
    n_identities: int


def rating_measures(trials: pd.DataFrame) -> list[str]:
    """The rate-task measures of the trials with numeric values in both conditions."""
    import pandas as pd

    rated = trials[trials["task"] == "rate"] if "task" in trials.columns else trials.iloc[:0]
    measures = []
    for measure, rows in rated.groupby("measure", sort=True):
        numeric = pd.to_numeric(rows["value"], errors="coerce")
        if numeric.notna().all() and {"ai", "real"} <= set(rows["condition"]):
            measures.append(str(measure))
    return measures


def study_trials(study) -> pd.DataFrame:
    """The study's included trials, validated as the report reads them: the saved plan's
    exclusion rules (else the defaults), no simulated participants."""
    from analysis.exclusions import included_trials, screen_participants
    from analysis.io import load
    from survey.findings.service import load_inputs

    inputs = load_inputs(study)
    if inputs.trials.empty:
        return inputs.trials
    trials, participants = load(
        inputs.trials, inputs.participants, scale_ranges=inputs.scale_ranges
    )
    prereg = study.preregistration
    rules = prereg.plan.get("exclusions") if prereg is not None else None
    return included_trials(trials, screen_participants(trials, participants, rules))


def pilot_of(trials: pd.DataFrame, measure: str) -> Pilot:
    """The pilot summary of one measure; ValueError when its data cannot give one."""
    from analysis.power import differences_from_pilot

    rows = trials[(trials["measure"] == measure) & (trials["task"] == "rate")]
    if rows.empty:
        raise ValueError(gettext("no included ratings of %(measure)s yet", measure=repr(measure)))
    mean, sd, n = differences_from_pilot(rows)
    return Pilot(measure, rows, mean, sd, n, int(rows["identity"].nunique()))


def curve_numbers(n_required: int) -> list[int]:
    """Numbers of participants for the analytic curve: 2 to twice the answer."""
    top = max(2 * n_required, 10)
    step = max(1, math.ceil((top - 2) / (CURVE_POINTS - 1)))
    return sorted({*range(2, top + 1, step), top, n_required})


def simulation_grid(n_required: int, n_identities: int) -> list[int]:
    """Up to WEB_POINTS even numbers of participants around the analytic answer, the most
    telling first (the answer, then above and below it), as the time limit may stop early."""
    most = min(WEB_MAX_PARTICIPANTS, WEB_MAX_TRIALS // n_identities)
    numbers = [min(most, max(4, 2 * round(n_required * k / 2))) for k in (1.0, 1.5, 0.75, 2.0, 0.5)]
    return list(dict.fromkeys(numbers))[:WEB_POINTS]


def simulate_lmm(
    effect: float, components, n_required: int, n_identities: int, target: float, alpha: float
) -> SimulatedSampleSize:
    """The LMM's simulated power around the analytic answer, within the web bounds."""
    from analysis.power import sample_size_simulated

    return sample_size_simulated(
        effect,
        components,
        identities=[n_identities],
        participants=simulation_grid(n_required, n_identities),
        target_power=target,
        test="lmm",
        alpha=alpha,
        n_sims=WEB_SIMS,
        refine=0,
        max_seconds=WEB_SECONDS,
    )


def answer_note(found: PairedSampleSize) -> str:
    """Say, in the page's words, that two pairs (the fewest a paired t test takes) already
    reach the target power, when they do (analysis.power's `note`); else ""."""
    if not found.note:
        return ""
    return gettext(
        "%(pairs)s pairs already give power %(power)s; a paired t test needs at least 2.",
        pairs=found.n_required,
        power=f"{found.power_at_n_required:.3f}",
    )


def simulation_notes(
    simulated: SimulatedSampleSize, grid: list[int], seconds: float = WEB_SECONDS
) -> list[str]:
    """What the simulation's notes say (analysis.power's `notes`), in the page's words, one
    sentence each: the target not reached, an answer within the simulation's error, failed
    fits, and the numbers of participants the time limit left out (of `grid`, simulated in
    its order, with the limit `seconds`)."""
    notes = []
    curve, target = simulated.curve, simulated.target_power
    counts = []
    for found in simulated.required.to_dict("records"):
        identities = int(found["n_identities"])
        counts.append(identities)
        points = curve[curve["n_identities"] == identities]
        n_required = found["n_required"]
        if n_required is None or n_required != n_required:  # None, or NaN in a frame
            most = points.loc[points["n_participants"].idxmax()]
            notes.append(
                gettext(
                    "%(identities)s identities: the target power %(target)s is not reached by "
                    "%(participants)s participants (estimated power %(power)s).",
                    identities=identities,
                    target=f"{target:g}",
                    participants=int(most["n_participants"]),
                    power=f"{most['power']:.2f}",
                )
            )
        elif found["ci_low"] is not None and found["ci_low"] < target:
            notes.append(
                gettext(
                    "%(identities)s identities: at %(participants)s participants the 95 %% Monte "
                    "Carlo interval [%(low)s, %(high)s] includes the target; more simulations "
                    "would narrow it.",
                    identities=identities,
                    participants=int(n_required),
                    low=f"{found['ci_low']:.2f}",
                    high=f"{found['ci_high']:.2f}",
                )
            )
        failed = int(points["failed"].sum())
        if failed:
            notes.append(
                gettext(
                    "%(identities)s identities: %(failed)s simulated fits failed and count as "
                    "not significant.",
                    identities=identities,
                    failed=failed,
                )
            )
    if not simulated.complete:
        simulated_points = set(zip(curve["n_participants"], curve["n_identities"], strict=True))
        left_out = [
            gettext(
                "%(participants)s participants x %(identities)s identities",
                participants=participants,
                identities=identities,
            )
            for identities in counts
            for participants in grid
            if (participants, identities) not in simulated_points
        ]
        notes.append(
            gettext(
                "Stopped after %(seconds)s s: not simulated: %(points)s.",
                seconds=f"{seconds:g}",
                points=", ".join(left_out),
            )
        )
    return notes


def chart(
    analytic: pd.DataFrame,
    found: PairedSampleSize,
    simulated: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """The power curve as SVG coordinates: the analytic line, the target, the answer and the
    simulated points with their Monte Carlo intervals."""
    width, height = 480, 300
    left, right, top, bottom = 52, 12, 12, 48
    x_max = float(analytic["n_participants"].max())
    if simulated is not None and len(simulated):
        x_max = max(x_max, float(simulated["n_participants"].max()))
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(n: float) -> float:
        return round(left + plot_w * n / x_max, 1)

    def y(p: float) -> float:
        return round(top + plot_h * (1 - p), 1)

    step = _nice_step(x_max / 6)
    x_ticks = [(x(n), n) for n in range(0, int(x_max) + 1, step)]
    y_ticks = [(y(p / 10), f"{p / 10:.1f}") for p in range(0, 11, 2)]
    line = " ".join(
        f"{x(n)},{y(p)}" for n, p in zip(analytic["n_participants"], analytic["power"], strict=True)
    )
    points = []
    if simulated is not None:
        for row in simulated.to_dict("records"):
            points.append(
                {
                    "x": x(row["n_participants"]),
                    "y": y(row["power"]),
                    "low": y(row["ci_low"]),
                    "high": y(row["ci_high"]),
                    "n": int(row["n_participants"]),
                    "power": row["power"],
                    "ci_low": row["ci_low"],
                    "ci_high": row["ci_high"],
                }
            )
    return {
        "width": width,
        "height": height,
        "left": left,
        "right": width - right,
        "top": top,
        "bottom": height - bottom,
        "x_ticks": x_ticks,
        "y_ticks": y_ticks,
        "line": line,
        "target_y": y(found.target_power),
        "answer_x": x(found.n_required),
        "answer_y": y(found.power_at_n_required),
        "points": points,
    }


def _nice_step(raw: float) -> int:
    """A round tick step (1, 2, 5 times a power of ten) at least ``raw``."""
    if raw <= 1:
        return 1
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * power >= raw:
            return int(factor * power)
    return int(10 * power)
