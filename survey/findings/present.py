"""How results.json reads on a page: outcome sections, test rows and the facts of each claim.

Claims are never re-worded here: a finding's ``claim`` is shown as results.json has it; this
module only lays out the numbers beside it. Pure functions, no Flask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from analysis.findings import corrected_p, format_p
from analysis.results import (
    FigureSpec,
    descriptive,
    main_test,
    outcome_of,
    outcomes_in,
    scale_factor,
    unit_words,
)

METHOD_NAMES = {
    "paired_t": "Paired t-test",
    "one_sample_t": "One-sample t-test",
    "wilcoxon": "Wilcoxon signed-rank test",
    "binomial": "Exact binomial test (all trials pooled)",
    "tost": "Equivalence test (TOST)",
    "lmm": "Linear mixed model",
    "glmm": "Logistic mixed model",
}
VERDICT_NAMES = {"difference": "Difference", "no_difference": "No reliable difference",
                 "inconclusive": "Inconclusive"}
EFFECT_NAMES = {"d_z": "d_z", "d": "d", "rank_biserial": "rank-biserial r",
                "cohen_h": "Cohen's h", "odds_ratio": "odds ratio", "d_westfall": "d (Westfall)"}


def number(value: Any, digits: int = 2) -> str:
    """A number with fixed decimals, '—' when missing; no '-0.00'."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        return "—"
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def p_value(value: Any, alpha: float = 0.05) -> str:
    """'< 0.001' or '= 0.012', with the digits the claims use (never rounded across alpha)."""
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "—"
    return format_p(float(value), alpha)


def statistic_text(test: dict) -> str:
    """'t(112) = -8.04', 'V = 512', 'z = -6.1' or '—'."""
    stat = test.get("statistic")
    if stat is None:
        return "—"
    name = test.get("statistic_name") or ("t" if test.get("method") in (
        "paired_t", "one_sample_t", "tost", "lmm") else "")
    df = test.get("df")
    if name == "t" and isinstance(df, (int, float)):
        df_text = f"{df:.0f}" if float(df).is_integer() else f"{df:.1f}"
        return f"t({df_text}) = {number(stat)}"
    if name:
        return f"{name} = {number(stat) if name != 'V' else f'{stat:g}'}"
    return number(stat)


@dataclass
class Facts:
    """The numbers beside a claim, in the unit the claim uses."""

    estimate: str
    ci: str
    p: str
    n: str
    preregistered: bool
    verdict: str
    test: str


def claim_facts(results: dict, finding: dict) -> Facts | None:
    """Estimate, 95% CI, corrected p, N and preregistration of a finding's main test."""
    tests = results.get("tests", [])
    indices = finding.get("supported_by") or []
    if not indices or not 0 <= indices[0] < len(tests):
        return None
    test = tests[indices[0]]
    outcome = outcome_of(results, test["outcome"])
    factor = scale_factor(outcome)
    digits = 1 if factor == 100 else 2
    label = "AI minus real" if outcome.paired else (
        "difference from chance" if outcome.reference_value else "difference from zero")
    unit = unit_words(outcome)
    p = corrected_p(test)
    correction = test.get("correction")
    p_name = {"holm": "Holm-adjusted p ", "bh": "BH-adjusted p "}.get(correction, "p ")
    n = test.get("n")
    return Facts(
        estimate=f"{label}: {number(_times(test.get('estimate'), factor), digits)} {unit}",
        ci=f"{number(_times(test.get('ci_low'), factor), digits)} to "
           f"{number(_times(test.get('ci_high'), factor), digits)}",
        p=p_name + p_value(p, results.get("alpha", 0.05)),
        n=f"{n} participants" if n is not None else "—",
        preregistered=bool(finding.get("preregistered")),
        verdict=VERDICT_NAMES.get(finding.get("verdict"), str(finding.get("verdict"))),
        test=METHOD_NAMES.get(test.get("method"), str(test.get("method"))),
    )


def _times(value: Any, factor: float) -> Any:
    """value * factor, or value itself when it is not a number."""
    return value * factor if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else value


@dataclass
class OutcomeSection:
    """One outcome of the report: its claim, descriptives, tests and figures."""

    name: str
    label: str
    finding: dict | None
    facts: Facts | None
    descriptives: list[dict]
    tests: list[dict]
    figures: list[FigureSpec] = field(default_factory=list)


def figure_outcomes(spec_name: str) -> tuple[str, ...]:
    """The outcomes a figure belongs to (it is shown under the first)."""
    if spec_name == "sdt":
        return ("d_prime", "criterion")
    if spec_name == "detection":
        return ("detection_accuracy", "detection_d_prime")
    for prefix in ("paired_", "identities_"):
        if spec_name.startswith(prefix):
            return (spec_name[len(prefix):],)
    return (spec_name,)


def outcome_sections(results: dict, specs: list[FigureSpec]) -> list[OutcomeSection]:
    """The report's outcome sections in report order, each with its figures."""
    findings = {f["outcome"]: f for f in results.get("findings", [])}
    sections = []
    placed: set[str] = set()
    # An outcome that could not be tested still has a finding that says why.
    names = dict.fromkeys(outcomes_in(results) + [f["outcome"] for f in findings.values()])
    for name in names:
        outcome = outcome_of(results, name)
        finding = findings.get(name)
        rows = [d for d in results.get("descriptives", []) if d.get("outcome") == name]
        figures = [s for s in specs if s.name not in placed and figure_outcomes(s.name)[0] == name]
        placed.update(s.name for s in figures)
        label = outcome.label[0].upper() + outcome.label[1:]
        sections.append(OutcomeSection(
            name=name, label=label, finding=finding,
            facts=claim_facts(results, finding) if finding else None,
            descriptives=rows,
            tests=[t for t in results.get("tests", []) if t.get("outcome") == name],
            figures=figures))
    return sections


def condition_means(results: dict, name: str) -> list[dict]:
    """Participant-level means with CIs per condition of an outcome, for a compact table."""
    rows = []
    outcome = outcome_of(results, name)
    factor = scale_factor(outcome)
    digits = 1 if factor == 100 else 2
    for condition in (("real", "ai") if outcome.paired else (None,)):
        row = descriptive(results, name, condition)
        if row is None:
            continue
        rows.append({"condition": {"real": "Real photograph", "ai": "AI headshot"}.get(
            condition, "All"), "mean": number(_times(row.get("mean"), factor), digits),
            "ci": f"{number(_times(row.get('ci_low'), factor), digits)} to "
                  f"{number(_times(row.get('ci_high'), factor), digits)}",
            "n": row.get("n")})
    return rows


def public_findings(results: dict) -> list[dict]:
    """Each finding with its facts and per-condition means, for the public page and embed."""
    out = []
    for finding in results.get("findings", []):
        test = main_test(results, finding["outcome"])
        out.append({"finding": finding, "facts": claim_facts(results, finding),
                    "means": condition_means(results, finding["outcome"]),
                    "label": outcome_of(results, finding["outcome"]).label,
                    "has_test": test is not None})
    return out
