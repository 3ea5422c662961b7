"""Reading results.json: the lookups that the figures and the web pages share (stdlib only)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from analysis.findings import MAIN_FAMILIES
from analysis.vocabulary import FIXED_OUTCOMES, Outcome, rating_outcome

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FORMATS = {"svg": "image/svg+xml", "png": "image/png"}


@dataclass(frozen=True)
class FigureSpec:
    """A figure of the report: its file name, title, alt text and how to draw it."""

    name: str
    title: str
    alt: str
    draw: Callable[[], Figure]


def outcome_of(results: dict, name: str) -> Outcome:
    """The Outcome called `name`, with its scale when results.json names one."""
    if name in FIXED_OUTCOMES:
        return FIXED_OUTCOMES[name]
    scale = next(
        (
            t.get("scale")
            for t in results.get("tests", [])
            if t.get("outcome") == name and t.get("scale")
        ),
        None,
    )
    return rating_outcome(name, {name: tuple(scale)} if scale else None)


def main_test(results: dict, outcome: str) -> dict | None:
    """The participant-level test behind an outcome's finding, or None."""
    return next(
        (
            t
            for t in results.get("tests", [])
            if t.get("outcome") == outcome
            and t.get("family") in MAIN_FAMILIES
            and t.get("level") == "participant"
        ),
        None,
    )


def descriptive(
    results: dict, outcome: str, condition: str | None, level: str = "participant"
) -> dict | None:
    """The descriptives row of an outcome, condition and level, or None."""
    return next(
        (
            d
            for d in results.get("descriptives", [])
            if d.get("outcome") == outcome
            and d.get("level") == level
            and (d.get("condition") or None) == condition
        ),
        None,
    )


WITHIN_FIELDS = ("within_mean", "within_ci_low", "within_ci_high", "within_n")


def paired_means(results: dict, outcome: Outcome) -> tuple[dict[str, dict], bool]:
    """Each condition's mean, 95% CI and n of a paired outcome, and whether the CIs are
    within-participant (Cousineau-Morey) ones.

    Within-participant when results.json has them for both conditions (reports since they were
    added): then the means and n are those of the participants with both conditions, as in the
    paired test and the report's figures. Older results give the ordinary means and intervals.
    Returns {condition: {"mean", "low", "high", "n"}} for the conditions with a mean.
    """
    rows = {c: descriptive(results, outcome.name, c) or {} for c in ("real", "ai")}
    within = all(r.get(k) is not None for r in rows.values() for k in WITHIN_FIELDS)
    keys = WITHIN_FIELDS if within else ("mean", "ci_low", "ci_high", "n")
    out = {
        c: dict(zip(("mean", "low", "high", "n"), (r.get(k) for k in keys), strict=True))
        for c, r in rows.items()
        if r.get(keys[0]) is not None
    }
    return out, within


def outcomes_in(results: dict) -> list[str]:
    """Outcome names in report order (the order of their first test)."""
    return list(dict.fromkeys(t["outcome"] for t in results.get("tests", [])))


def scale_factor(outcome: Outcome) -> float:
    """100 for proportions and shares (drawn in percent), else 1."""
    return 100.0 if outcome.kind in ("proportion", "share") else 1.0


def unit_words(outcome: Outcome) -> str:
    """The unit of a difference of this outcome, in words."""
    if outcome.kind == "rating":
        low, high = outcome.scale or (1, 7)
        return f"points on the {low}–{high} scale"
    if outcome.kind in ("proportion", "share"):
        return "percentage points"
    return "z units"


def card_alt(finding: dict, study_title: str, n: int) -> str:
    """Alt text of a claim card: the claim itself, N and the study."""
    return f"Chart from the study “{study_title}” (N = {n} participants). {finding['claim']}"
