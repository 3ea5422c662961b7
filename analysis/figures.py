"""Figures of a study's results drawn with matplotlib (Agg, bundled fonts, Okabe–Ito colours)."""

from __future__ import annotations

import io
import math
import textwrap
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.findings import fixed
from analysis.results import (
    FORMATS,
    FigureSpec,
    descriptive,
    main_test,
    outcome_of,
    outcomes_in,
    paired_means,
    scale_factor,
    unit_words,
)
from analysis.vocabulary import FIXED_OUTCOMES, Outcome

if TYPE_CHECKING:
    from matplotlib.axes import Axes

# Okabe & Ito (2008), "Color Universal Design": distinguishable with every common colour-vision
# deficiency. Real photographs blue, AI headshots vermillion; grey for individual units.
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
}
CONDITION_COLOURS = {"real": OKABE_ITO["blue"], "ai": OKABE_ITO["vermillion"]}
CONDITION_NAMES = {"real": "Real photograph", "ai": "AI headshot"}
UNIT_COLOUR = "#8c8c8c"
# Public chart cards: 1200 x 675 pixels (16:9), the size slides and social posts expect.
CARD_INCHES = (12.0, 6.75)
CARD_DPI = 100
REPORT_DPI = 150
# Beyond this many participants the paired lines are drawn for a fixed random sample only:
# thousands of lines hide the means and make the SVG heavy.
MAX_LINES = 400


# --- labels -----------------------------------------------------------------------------------


def axis_label(outcome: Outcome) -> str:
    """Axis label of an outcome's values, with its unit."""
    if outcome.kind == "rating":
        low, high = outcome.scale or (1, 7)
        name = outcome.name.replace("_", " ")
        return f"{name.capitalize()} rating (points, {low}–{high} scale)"
    return {
        "recognition_accuracy": "Recognition accuracy (% correct)",
        "d_prime": "Recognition sensitivity d′ (z units)",
        "criterion": "Response criterion c (z units)",
        "choice_real": "Share choosing the real photograph (% of pairs)",
        "detection_accuracy": "AI-detection accuracy (% correct)",
        "detection_d_prime": "AI-detection sensitivity d′ (z units)",
        "memory_hit_rate": "Memory hit rate (% of studied people said 'met before')",
        "memory_d_prime": "Memory sensitivity d′ (z units)",
        "memory_criterion": "Memory response criterion c (z units)",
    }.get(outcome.name, f"{outcome.label} (units of the outcome)")


def _digits(factor: float) -> int:
    """Decimals of a value drawn with this multiplier: one for percentages, else two."""
    return 1 if factor == 100.0 else 2


def _fmt(value: float | None, factor: float = 1.0, digits: int | None = None) -> str:
    """A number for alt text and labels; 'not available' when missing."""
    if value is None or not math.isfinite(value):
        return "not available"
    return fixed(value * factor, _digits(factor) if digits is None else digits)


def _mean_marker(
    ax, x: float, y: float, err: tuple[float, float] | None, colour: str, horizontal: bool = False
) -> None:
    """A mean as a large diamond over its 95% CI drawn as a thick capped bar (`err`: the
    distances below and above, or None when there is no interval)."""
    if err is not None:
        ax.errorbar(
            [x],
            [y],
            **{"xerr" if horizontal else "yerr": [[err[0]], [err[1]]]},
            fmt="none",
            ecolor=colour,
            elinewidth=3,
            capsize=8,
            capthick=3,
            zorder=5,
        )
    ax.plot([x], [y], marker="D", markersize=11, color=colour, markeredgecolor="white", zorder=6)


def _mean_ci(row: dict | None, factor: float) -> str:
    """'mean 4.19 (95% CI 4.07 to 4.31, n = 113)'."""
    if row is None:
        return "no data"
    return (
        f"mean {_fmt(row.get('mean'), factor)} (95% CI {_fmt(row.get('ci_low'), factor)} to "
        f"{_fmt(row.get('ci_high'), factor)}, n = {row.get('n')})"
    )


def _difference(results: dict, outcome: Outcome) -> str:
    """'AI minus real: -0.38 points on the 1–7 scale (95% CI -0.47 to -0.28)'."""
    test = main_test(results, outcome.name)
    if test is None:
        return ""
    factor = scale_factor(outcome)
    what = (
        "AI minus real"
        if outcome.paired
        else (f"Difference from {'chance' if outcome.reference_value else 'zero'}")
    )
    return (
        f"{what}: {_fmt(test.get('estimate'), factor)} {unit_words(outcome)} (95% CI "
        f"{_fmt(test.get('ci_low'), factor)} to {_fmt(test.get('ci_high'), factor)})."
    )


# --- drawing helpers ---------------------------------------------------------------------------


def _figure(width: float, height: float) -> tuple[Figure, Axes]:
    """A figure with one axes, white background, no top and right spines."""
    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.add_subplot()
    _style(ax)
    return fig, ax


def _style(ax) -> None:
    """Quiet axes: no top or right spine, light horizontal grid."""
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", color="#e3e3e3", linewidth=0.8)
    ax.set_axisbelow(True)


def paired_wide(scores: pd.DataFrame, outcome: str, unit: str) -> pd.DataFrame:
    """Units with a value in both conditions of an outcome: columns real and ai."""
    from analysis.stats import paired_wide as complete_pairs

    return complete_pairs(
        scores[scores["outcome"] == outcome], "value", "condition", unit, levels=("real", "ai")
    )


def within_intervals(
    wide: pd.DataFrame, confidence: float = 0.95
) -> dict[str, tuple[float, float, float]]:
    """Each condition's mean with its within-participant interval (Cousineau-Morey).

    `analysis.descriptives.within_ci` on the two columns real and ai: each participant's scores
    are centred on their own mean plus the grand mean (Cousineau, 2005) and the variance is
    corrected by J / (J - 1) (Morey, 2008). Between-participant differences drop out, as in the
    paired test, so the bars agree with it. Returns {condition: (mean, low, high)}; empty below
    two participants.
    """
    from analysis.descriptives import within_ci

    wide = wide[["real", "ai"]].dropna()
    if len(wide) < 2:
        return {}
    long = (
        wide.rename_axis("participant")
        .reset_index()
        .melt(id_vars="participant", var_name="condition", value_name="value")
    )
    table = within_ci(long, confidence=confidence).set_index("condition")
    return {
        c: (
            float(table.loc[c, "mean"]),
            float(table.loc[c, "ci_low"]),
            float(table.loc[c, "ci_high"]),
        )
        for c in ("real", "ai")
    }


WITHIN_NOTE = "Diamonds and bars: means with 95% within-participant CIs (Cousineau–Morey)"


def _within_note(fig: Figure) -> None:
    """Say under a condition plot what its bars are (they are not the descriptives' intervals)."""
    fig.supxlabel(WITHIN_NOTE, x=0.01, ha="left", fontsize=8.5, color="#555555")


def _within_text(intervals: dict, condition: str, factor: float, n: int) -> str:
    """'mean 4.49 (95% within-participant CI 4.36 to 4.62, n = 37)'."""
    if condition not in intervals:
        return "no data"
    mean, low, high = intervals[condition]
    return (
        f"mean {_fmt(mean, factor)} (95% within-participant CI {_fmt(low, factor)} to "
        f"{_fmt(high, factor)}, n = {n})"
    )


def _draw_paired(ax, results: dict, outcome: Outcome, scores: pd.DataFrame) -> int:
    """Each participant's two means joined by a grey line, and the means with 95%
    within-participant (Cousineau-Morey) intervals, which agree with the paired test."""
    factor = scale_factor(outcome)
    wide = paired_wide(scores, outcome.name, "participant") * factor
    intervals = within_intervals(wide)
    if len(wide) > MAX_LINES:
        wide = wide.sample(MAX_LINES, random_state=0)
    jitter = np.random.default_rng(0).uniform(-0.06, 0.06, size=(len(wide), 2))
    alpha = 0.5 if len(wide) <= 50 else 0.25
    for (real, ai), (jr, ja) in zip(wide[["real", "ai"]].to_numpy(), jitter, strict=True):
        ax.plot(
            [0 + jr, 1 + ja],
            [real, ai],
            color=UNIT_COLOUR,
            alpha=alpha,
            linewidth=0.8,
            marker="o",
            markersize=2.5,
        )
    for x, condition in enumerate(("real", "ai")):
        if condition not in intervals:
            continue
        mean, low, high = intervals[condition]
        err = (mean - low, high - mean) if math.isfinite(low) and math.isfinite(high) else None
        _mean_marker(ax, x, mean, err, CONDITION_COLOURS[condition])
        ax.annotate(
            fixed(mean, _digits(factor)),
            (x, mean),
            xytext=(14, 0),
            textcoords="offset points",
            va="center",
            fontsize=10,
            fontweight="bold",
            color=CONDITION_COLOURS[condition],
        )
    ax.set_xticks([0, 1], [CONDITION_NAMES["real"], CONDITION_NAMES["ai"]])
    ax.set_xlim(-0.5, 1.6)
    ax.set_xlabel("Condition (source of the headshot)")
    ax.set_ylabel(axis_label(outcome))
    if outcome.kind == "rating" and outcome.scale:
        ax.set_ylim(outcome.scale[0] - 0.3, outcome.scale[1] + 0.3)
    elif outcome.kind in ("proportion", "share"):
        ax.set_ylim(-3, 103)
    return len(paired_wide(scores, outcome.name, "participant"))


def _overall_rows(scores: pd.DataFrame, name: str) -> pd.DataFrame:
    """One outcome's scores over both conditions: accuracy is also stored per condition (to show
    a bias towards one answer), and those rows are not further units."""
    rows = scores[scores["outcome"] == name]
    if "condition" in rows:
        rows = rows[rows["condition"].isna() | (rows["condition"] == "")]
    return rows


def _draw_against_reference(ax, results: dict, outcome: Outcome, scores: pd.DataFrame) -> int:
    """Each participant's value as a dot, the mean with its 95% CI, and the reference line."""
    factor = scale_factor(outcome)
    values = _overall_rows(scores, outcome.name)["value"].to_numpy(dtype=float) * factor
    shown = (
        values
        if len(values) <= MAX_LINES
        else np.random.default_rng(0).choice(values, MAX_LINES, replace=False)
    )
    jitter = np.random.default_rng(1).uniform(-0.18, 0.18, size=len(shown))
    ax.scatter(shown, jitter, s=14, color=UNIT_COLOUR, alpha=0.6, linewidths=0)
    reference = outcome.reference_value * factor
    chance = "chance" if outcome.reference_value else "zero"
    ax.axvline(reference, color=OKABE_ITO["black"], linestyle="--", linewidth=1.2)
    ax.annotate(
        f"{chance} ({reference:g}{'%' if factor == 100 else ''})",
        (reference, 0.5),
        xytext=(4, 0),
        textcoords="offset points",
        fontsize=9,
        va="center",
    )
    row = descriptive(results, outcome.name, None)
    if row is not None and row.get("mean") is not None:
        mean = row["mean"] * factor
        err = (
            (mean - row["ci_low"] * factor, row["ci_high"] * factor - mean)
            if row.get("ci_low") is not None and row.get("ci_high") is not None
            else None
        )
        _mean_marker(ax, mean, 0, err, OKABE_ITO["green"], horizontal=True)
        # Above the cloud of unit dots (they spread over -0.18..0.18), so it stays readable.
        ax.annotate(
            f"mean {fixed(mean, _digits(factor))}",
            (mean, 0.3),
            ha="center",
            fontsize=10,
            fontweight="bold",
            color=OKABE_ITO["green"],
        )
    ax.set_yticks([])
    ax.set_ylim(-0.6, 0.6)
    ax.grid(axis="x", color="#e3e3e3", linewidth=0.8)
    ax.grid(axis="y", visible=False)
    ax.set_xlabel(axis_label(outcome))
    if outcome.kind in ("proportion", "share"):
        ax.set_xlim(-3, 103)
    return len(values)


# --- the report's figures -----------------------------------------------------------------------


def _paired_spec(results: dict, outcome: Outcome, scores: pd.DataFrame) -> FigureSpec:
    """Per-condition means with 95% CIs over each participant's paired values."""
    n = len(paired_wide(scores, outcome.name, "participant"))
    factor = scale_factor(outcome)
    label = outcome.label[0].upper() + outcome.label[1:]
    title = f"{label} by condition"
    sample = f" (a random {MAX_LINES} of them drawn)" if n > MAX_LINES else ""
    within = within_intervals(paired_wide(scores, outcome.name, "participant"))
    alt = (
        f"{title}, {n} participants. Real photographs: "
        f"{_within_text(within, 'real', factor, n)}. AI headshots: "
        f"{_within_text(within, 'ai', factor, n)}. "
        f"{_difference(results, outcome)} Grey lines join each participant's mean in the two "
        f"conditions{sample}; diamonds with bars are the means with 95% within-participant "
        "confidence intervals (Cousineau–Morey), which leave out differences between "
        f"participants as the paired test does. Axis: {axis_label(outcome)}."
    )

    def draw() -> Figure:
        fig, ax = _figure(6.4, 4.8)
        _draw_paired(ax, results, outcome, scores)
        ax.set_title(title, loc="left", fontsize=12, fontweight="bold")
        _within_note(fig)
        return fig

    return FigureSpec(f"paired_{outcome.name}", title, alt, draw)


def _sdt_spec(
    results: dict,
    scores: pd.DataFrame,
    names: tuple[str, str] = ("d_prime", "criterion"),
    spec_name: str = "sdt",
) -> FigureSpec:
    """d' and criterion by condition, two panels of paired values (recognition or memory)."""
    memory = names[0] == "memory_d_prime"
    parts = []
    for name in names:
        outcome = FIXED_OUTCOMES[name]
        within = within_intervals(paired_wide(scores, name, "participant"))
        count = len(paired_wide(scores, name, "participant"))
        parts.append(
            f"{outcome.label}: real {_within_text(within, 'real', 1, count)}, "
            f"AI {_within_text(within, 'ai', 1, count)}; "
            f"{_difference(results, outcome)}"
        )
    n = len(paired_wide(scores, names[0], "participant"))
    if memory:
        title = "Memory sensitivity (d′) and criterion (c) by how people were met"
        meaning = (
            "Higher d′ means better telling people met in the study phase (in their real "
            "photograph or their AI headshot) from people never shown, in new photos; higher c "
            "means answering 'met before' more cautiously. Both conditions share the "
            "participant's false-alarm rate on the people never shown."
        )
    else:
        title = "Recognition sensitivity (d′) and criterion (c) by condition"
        meaning = (
            "Higher d′ means better telling the same person from a different one; higher c "
            "means answering 'same person' more cautiously."
        )
    alt = (
        f"{title}, {n} participants. " + " ".join(parts) + f" {meaning} Grey lines join each "
        "participant's values; diamonds with bars are means with 95% within-participant "
        "confidence intervals (Cousineau–Morey)."
    )

    def draw() -> Figure:
        fig = Figure(figsize=(9.6, 4.8), layout="constrained")
        axes = fig.subplots(1, 2)
        for ax, name in zip(axes, names, strict=True):
            _style(ax)
            _draw_paired(ax, results, FIXED_OUTCOMES[name], scores)
            ax.axhline(0, color=OKABE_ITO["black"], linewidth=0.8)
            ax.set_title(
                FIXED_OUTCOMES[name].label.capitalize(), loc="left", fontsize=11, fontweight="bold"
            )
        fig.suptitle(title, x=0.01, ha="left", fontsize=12, fontweight="bold")
        _within_note(fig)
        return fig

    return FigureSpec(spec_name, title, alt, draw)


def _reference_spec(
    results: dict, names: Sequence[str], scores: pd.DataFrame, name: str, title: str, what: str
) -> FigureSpec:
    """One or more one-sample outcomes against their reference (chance or zero), one panel each."""
    parts = []
    for outcome_name in names:
        outcome = FIXED_OUTCOMES[outcome_name]
        row = descriptive(results, outcome_name, None)
        parts.append(
            f"{outcome.label}: {_mean_ci(row, scale_factor(outcome))}; "
            f"{_difference(results, outcome)}"
        )
    n = len(_overall_rows(scores, names[0]))
    alt = (
        f"{title}, {n} participants. " + " ".join(parts) + f" Grey dots are {what}; the "
        "diamond with its bar is the mean with its 95% confidence interval; the dashed line "
        "marks chance (or zero for d′)."
    )

    def draw() -> Figure:
        fig = Figure(figsize=(7.2, 2.6 * len(names) + 0.6), layout="constrained")
        axes = np.atleast_1d(fig.subplots(len(names), 1))
        for ax, outcome_name in zip(axes, names, strict=True):
            _style(ax)
            _draw_against_reference(ax, results, FIXED_OUTCOMES[outcome_name], scores)
        fig.suptitle(title, x=0.01, ha="left", fontsize=12, fontweight="bold")
        return fig

    return FigureSpec(name, title, alt, draw)


def identity_interval(
    diff: pd.Series, confidence: float = 0.95
) -> tuple[float, float, float] | None:
    """The mean of the identities' differences with its t interval; None below two identities.

    The same interval as the identity-level paired t-test: mean ± t(n - 1) × SD / √n.
    """
    from scipy import stats as scipy_stats

    values = diff.dropna().to_numpy(dtype=float)
    n = len(values)
    if n < 2:
        return None
    mean = float(values.mean())
    half = (
        float(scipy_stats.t.ppf(0.5 + confidence / 2, n - 1))
        * float(values.std(ddof=1))
        / math.sqrt(n)
    )
    return mean, mean - half, mean + half


def _identity_spec(results: dict, outcome: Outcome, identity_scores: pd.DataFrame) -> FigureSpec:
    """Each identity's AI-minus-real difference, sorted: who loses most from an AI headshot."""
    factor = scale_factor(outcome)
    wide = paired_wide(identity_scores, outcome.name, "identity") * factor
    diff = (wide["ai"] - wide["real"]).sort_values(ascending=False)
    label = outcome.label[0].upper() + outcome.label[1:]
    title = f"{label}: AI minus real, per identity"
    worst = ", ".join(
        f"{identity} ({_fmt(value, digits=_digits(factor))})"
        for identity, value in diff.sort_values().head(3).items()
    )
    interval = identity_interval(diff)
    band = (
        f" The shaded band and the black diamond at the bottom are the mean over the "
        f"{len(diff)} identities, {_fmt(interval[0], digits=_digits(factor))}, "
        f"with its 95% confidence interval, "
        f"{_fmt(interval[1], digits=_digits(factor))} to "
        f"{_fmt(interval[2], digits=_digits(factor))} (a t interval over the "
        "identities' differences, as the identity-level paired t-test computes it)."
        if interval
        else ""
    )
    alt = (
        f"{title}, {len(diff)} identities, sorted from the smallest to the largest loss. "
        f"Largest losses with an AI headshot: {worst or 'none'} {unit_words(outcome)}."
        f"{band} Below zero means the person fared worse with the AI headshot than with the "
        "real photograph."
    )

    def draw() -> Figure:
        height = min(12.0, max(3.4, 0.28 * len(diff) + 2.1))
        fig, ax = _figure(6.4, height)
        colours = [CONDITION_COLOURS["ai"] if v < 0 else CONDITION_COLOURS["real"] for v in diff]
        y = np.arange(len(diff))
        if interval:
            mean, low, high = interval
            ax.axvspan(low, high, color="#d9d9d9", alpha=0.6, linewidth=0, zorder=0)
            ax.axvline(mean, color=OKABE_ITO["black"], linewidth=1, linestyle=":", zorder=1)
            ax.errorbar(
                [mean],
                [-1.5],
                xerr=[[mean - low], [high - mean]],
                fmt="D",
                color=OKABE_ITO["black"],
                markersize=7,
                elinewidth=2,
                capsize=5,
                capthick=2,
                zorder=4,
            )
        ax.hlines(y, 0, diff.to_numpy(), color=colours, linewidth=2)
        ax.scatter(diff.to_numpy(), y, color=colours, s=36, zorder=3)
        ax.axvline(0, color=OKABE_ITO["black"], linewidth=1)
        labels = list(diff.index)
        ticks: list[float] = [float(v) for v in y]
        if interval:
            ticks, labels = [-1.5, *ticks], ["Mean (95% CI)", *labels]
        ax.set_yticks(ticks, labels, fontsize=8 if len(diff) > 30 else 10)
        ax.set_ylim(-2.3 if interval else -0.7, len(diff) - 0.3)
        ax.grid(axis="y", visible=False)
        ax.grid(axis="x", color="#e3e3e3", linewidth=0.8)
        ax.set_xlabel(f"AI minus real ({unit_words(outcome)})")
        ax.set_ylabel("Identity")
        ax.set_title(title, loc="left", fontsize=12, fontweight="bold")
        return fig

    return FigureSpec(f"identities_{outcome.name}", title, alt, draw)


def report_figures(
    results: dict, participant_scores: pd.DataFrame, identity_scores: pd.DataFrame
) -> list[FigureSpec]:
    """The figures a study's results call for, in report order.

    Parameters
    ----------
    results : dict
        results.json of `analysis.report.analyse`.
    participant_scores, identity_scores : pandas.DataFrame
        The tables of the same name (``participant``/``identity``, ``outcome``, ``condition``,
        ``value``, ``n_trials``).

    Returns
    -------
    list of FigureSpec
        ``paired_<outcome>`` for every rating scale, recognition accuracy and memory hit rate,
        ``sdt`` (d' and c), ``memory_sdt`` (memory d' and c by encoding condition),
        ``choice_real``, ``detection`` (accuracy and d' against chance) and
        ``identities_<outcome>`` for each paired outcome measured per trial; each with its title
        and alt text. Outcomes without data are left out.
    """
    names = outcomes_in(results)
    specs = []
    for name in names:
        outcome = outcome_of(results, name)
        if outcome.kind in ("rating", "proportion") and outcome.paired:
            specs.append(_paired_spec(results, outcome, participant_scores))
    if "d_prime" in names and "criterion" in names:
        specs.append(_sdt_spec(results, participant_scores))
    if "memory_d_prime" in names and "memory_criterion" in names:
        specs.append(
            _sdt_spec(
                results, participant_scores, ("memory_d_prime", "memory_criterion"), "memory_sdt"
            )
        )
    if "choice_real" in names:
        specs.append(
            _reference_spec(
                results,
                ["choice_real"],
                participant_scores,
                "choice_real",
                "Share of pairs in which the real photograph was chosen",
                "each participant's share",
            )
        )
    detection = [n for n in ("detection_accuracy", "detection_d_prime") if n in names]
    if detection:
        specs.append(
            _reference_spec(
                results,
                detection,
                participant_scores,
                "detection",
                "Telling AI headshots from real photographs",
                "each participant's accuracy (and d′)",
            )
        )
    for name in names:
        outcome = outcome_of(results, name)
        if (
            outcome.paired
            and outcome.kind in ("rating", "proportion")
            and len(paired_wide(identity_scores, name, "identity"))
        ):
            specs.append(_identity_spec(results, outcome, identity_scores))
    return specs


def render(fig: Figure, fmt: str, dpi: int = REPORT_DPI) -> bytes:
    """The figure as SVG or PNG bytes."""
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(FORMATS)}, got {fmt!r}")
    buffer = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    with warnings.catch_warnings():
        # Text the researcher wrote (a title, a hypothesis in a claim) may use characters the
        # bundled fonts lack: they are drawn as boxes, which is no reason to fail the figure.
        warnings.filterwarnings(
            "ignore", message=r"Glyph \d+ .* missing from font", category=UserWarning
        )
        fig.savefig(buffer, format=fmt, dpi=dpi, facecolor="white", metadata=metadata)
    return buffer.getvalue()


# --- chart cards for the public page ------------------------------------------------------------


def claim_card(
    results: dict, finding: dict, study_title: str, footer: str, fmt: str = "png"
) -> bytes:
    """A 1200 x 675 chart of one finding with its claim, N and the study name drawn on it.

    Parameters
    ----------
    results : dict
        results.json (its descriptives and tests give the chart's numbers).
    finding : dict
        One entry of ``results["findings"]``; its claim is drawn verbatim.
    study_title : str
        Name of the study, drawn at the top.
    footer : str
        Line drawn at the bottom (e.g. the citation URL and data hash).
    fmt : {"png", "svg"}
        PNG is exactly 1200 x 675 pixels.

    Returns
    -------
    bytes
        The image.
    """
    return render(claim_card_figure(results, finding, study_title, footer), fmt, dpi=CARD_DPI)


def claim_card_figure(results: dict, finding: dict, study_title: str, footer: str) -> Figure:
    """The figure of `claim_card`, not yet rendered (its layout can be measured)."""
    outcome = outcome_of(results, finding["outcome"])
    test = main_test(results, outcome.name) or {}
    n = test.get("n") or results.get("n_participants")
    fig = Figure(figsize=CARD_INCHES, dpi=CARD_DPI)
    fig.patch.set_facecolor("white")
    fig.text(
        0.04,
        0.93,
        _wrap(study_title, 80)[0],
        fontsize=20,
        fontweight="bold",
        va="top",
        parse_math=False,
    )
    kind = "Preregistered" if finding.get("preregistered") else "Exploratory"
    fig.text(
        0.04,
        0.855,
        f"{kind} finding · N = {n} participants",
        fontsize=13,
        color="#444444",
        va="top",
        parse_math=False,
    )
    ax = fig.add_axes((0.08, 0.17, 0.36, 0.58))
    _style(ax)
    if outcome.paired:
        _draw_card_means(ax, results, outcome)
    else:
        _draw_card_reference(ax, results, outcome)
    claim = finding["claim"]
    size, lines = 15, _wrap(claim, 50)
    while len(lines) * size * 1.45 > 430 and size > 9:
        size -= 1
        lines = _wrap(claim, int(50 * 15 / size))
    fig.text(
        0.50,
        0.76,
        "\n".join(lines),
        fontsize=size,
        va="top",
        linespacing=1.35,
        parse_math=False,
        wrap=False,
    )
    fig.text(0.04, 0.045, footer, fontsize=10.5, color="#444444", parse_math=False)
    return fig


# A bar's value label stands beside the bar, right of its error bar's caps (capsize 10 points):
# never on the whisker, whatever the interval's width, and in the bar's colour on white.
CARD_CAPSIZE = 10


def _bar_label(ax, x: float, half_width: float, mean: float, text: str, colour: str) -> None:
    """The value of a bar beside its right edge, at the height of the mean."""
    ax.annotate(
        text,
        (x + half_width, mean),
        xytext=(4, 0),
        textcoords="offset points",
        ha="left",
        va="center",
        fontsize=12,
        fontweight="bold",
        color=colour,
        gid="bar-label",
        zorder=6,
        # On white, so a reference line at the same height passes behind it.
        bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.5},
    )


CARD_WITHIN_TITLE = "Means with 95% within-participant confidence intervals"
CARD_WITHIN_NOTE = (
    "Participants with both conditions; the intervals leave out differences between "
    "participants, as the paired comparison does"
)


def _draw_card_means(ax, results: dict, outcome: Outcome) -> None:
    """Means per condition with 95% CIs, as bars (aggregates only, for a public chart).

    The intervals are within-participant ones (`paired_means`), as in the report's figures:
    they show what the paired comparison sees.
    """
    factor = scale_factor(outcome)
    means, within = paired_means(results, outcome)
    for x, condition in enumerate(("real", "ai")):
        if condition not in means:
            continue
        cell = means[condition]
        mean = cell["mean"] * factor
        # A rating bar starts at the scale's lowest point: a bar from 0 would exaggerate nothing
        # that anyone could answer.
        base = outcome.scale[0] if outcome.kind == "rating" and outcome.scale else 0
        ax.bar(
            [x],
            [mean - base],
            bottom=base,
            width=0.5,
            color=CONDITION_COLOURS[condition],
            alpha=0.9,
        )
        if cell["low"] is not None and cell["high"] is not None:
            ax.errorbar(
                [x],
                [mean],
                yerr=[[mean - cell["low"] * factor], [cell["high"] * factor - mean]],
                fmt="none",
                ecolor=OKABE_ITO["black"],
                elinewidth=2,
                capsize=CARD_CAPSIZE,
                capthick=2,
            )
        _bar_label(ax, x, 0.25, mean, fixed(mean, _digits(factor)), CONDITION_COLOURS[condition])
    ax.set_xticks([0, 1], [CONDITION_NAMES["real"], CONDITION_NAMES["ai"]], fontsize=11)
    ax.set_xlim(-0.45, 1.65)
    ax.set_ylabel(axis_label(outcome), fontsize=11)
    if outcome.kind == "rating" and outcome.scale:
        ax.set_ylim(outcome.scale[0], outcome.scale[1])
    elif outcome.kind in ("proportion", "share"):
        ax.set_ylim(0, 100)
    elif outcome.kind == "sdt":
        ax.axhline(0, color=OKABE_ITO["black"], linewidth=0.8)
    if within:
        ax.set_title(CARD_WITHIN_TITLE, loc="left", fontsize=11)
        ax.annotate(
            CARD_WITHIN_NOTE,
            (0, 0),
            xycoords="axes fraction",
            xytext=(0, -38),
            textcoords="offset points",
            fontsize=9.5,
            color="#444444",
            va="top",
            gid="interval-note",
        )
    else:
        ax.set_title("Means with 95% confidence intervals", loc="left", fontsize=11)


def _draw_card_reference(ax, results: dict, outcome: Outcome) -> None:
    """The mean with its 95% CI as a bar beside the line of chance (or zero), aggregates only."""
    factor = scale_factor(outcome)
    row = descriptive(results, outcome.name, None)
    reference = outcome.reference_value * factor
    if row is not None and row.get("mean") is not None:
        mean = row["mean"] * factor
        ax.bar([0], [mean], width=0.5, color=OKABE_ITO["green"], alpha=0.9)
        if row.get("ci_low") is not None and row.get("ci_high") is not None:
            ax.errorbar(
                [0],
                [mean],
                yerr=[[mean - row["ci_low"] * factor], [row["ci_high"] * factor - mean]],
                fmt="none",
                ecolor=OKABE_ITO["black"],
                elinewidth=2,
                capsize=CARD_CAPSIZE,
                capthick=2,
            )
        _bar_label(ax, 0, 0.25, mean, fixed(mean, _digits(factor)), OKABE_ITO["green"])
    chance = "chance" if outcome.reference_value else "zero"
    ax.axhline(reference, color=OKABE_ITO["black"], linestyle="--", linewidth=1.4)
    # Left of the bar, so it meets neither the bar's label (right) nor its error bar.
    ax.annotate(
        f"{chance} ({reference:g}{'%' if factor == 100 else ''})",
        (-0.27, reference),
        xytext=(-2, 4),
        textcoords="offset points",
        ha="right",
        fontsize=10,
    )
    ax.set_xlim(-0.75, 0.75)
    ax.set_xticks([0], ["All participants"], fontsize=11)
    ax.set_ylabel(axis_label(outcome), fontsize=11)
    if outcome.kind in ("proportion", "share"):
        ax.set_ylim(0, 100)
    ax.set_title("Mean with its 95% confidence interval", loc="left", fontsize=11)


def _wrap(text: str, width: int) -> list[str]:
    """Lines of at most `width` characters, words kept whole."""
    return textwrap.wrap(text, width=width, break_long_words=True) or [""]
