"""How results.json reads on a page: outcome sections, test rows and the facts of each claim."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from analysis.bayes import bf_label, bf_text
from analysis.findings import (
    ci_label,
    ci_unadjusted,
    corrected_p,
    df_text,
    fixed,
    format_p,
    scale_of,
)
from analysis.results import (
    FigureSpec,
    descriptive,
    main_test,
    outcome_of,
    outcomes_in,
    paired_means,
    scale_factor,
)
from analysis.vocabulary import FAMILY_LABELS
from survey.i18n import N_, gettext

# Labels the pages show are marked with N_ and translated where they are shown (`named`).
METHOD_NAMES = {
    "paired_t": N_("Paired t-test"),
    "one_sample_t": N_("One-sample t-test"),
    "wilcoxon": N_("Wilcoxon signed-rank test"),
    "binomial": N_("Exact binomial test (all trials pooled)"),
    "tost": N_("Equivalence test (TOST)"),
    "lmm": N_("Linear mixed model"),
    "glmm": N_("Logistic mixed model"),
    "clmm": N_("Ordinal mixed model (CLMM)"),
}
# A Wilcoxon test's name says which continuity correction it used.
WILCOXON_NAMES = {
    True: N_("Wilcoxon signed-rank test (with continuity correction)"),
    False: N_("Wilcoxon signed-rank test (no continuity correction)"),
}
VERDICT_NAMES = {
    "difference": N_("Difference"),
    "no_difference": N_("No reliable difference"),
    "inconclusive": N_("Inconclusive"),
}
EFFECT_NAMES = {
    "d_z": "d_z",
    "d": "d",
    "rank_biserial": N_("rank-biserial r"),
    "cohen_h": N_("Cohen's h"),
    "odds_ratio": N_("odds ratio"),
    "d_westfall": N_("d (Westfall)"),
    "cumulative_odds_ratio": N_("cumulative odds ratio"),
}
CONDITION_NAMES = {"real": N_("Real photograph"), "ai": N_("AI headshot")}


def named(names: dict, key: Any, missing: Any = None) -> Any:
    """The label `names` gives `key`, in the page's language; `missing` (else the key as it
    is) when it gives none."""
    name = names.get(key)
    if name is None:
        return key if missing is None else missing
    return gettext(name)


def value_range(low: str, high: str) -> str:
    """An interval as the tables write it: "0.12 to 0.48"."""
    return gettext("%(low)s to %(high)s", low=low, high=high)


def number(value: Any, digits: int = 2) -> str:
    """A number with fixed decimals, '—' when missing; no '-0.00'."""
    if (
        value is None
        or isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
    ):
        return "—"
    return fixed(value, digits)


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
    name = test.get("statistic_name") or (
        "t" if test.get("method") in ("paired_t", "one_sample_t", "tost", "lmm") else ""
    )
    df = test.get("df")
    if name == "t" and isinstance(df, (int, float)):
        return f"t({df_text(df)}) = {number(stat)}"
    if name:
        return f"{name} = {number(stat) if name != 'V' else f'{stat:g}'}"
    return number(stat)


LEVEL_NAMES = {
    "participant": N_("Participants"),
    "identity": N_("Identities"),
    "trial": N_("Trials"),
}


def family_name(results: dict, family: str | None) -> str:
    """'Wilcoxon tests, participants' for 'participant_wilcoxon'."""
    stored = next(
        (
            f.get("label")
            for f in results.get("families", [])
            if f.get("family") == family and f.get("label")
        ),
        None,
    )
    return stored or FAMILY_LABELS.get(family or "", str(family))


def method_name(test: dict) -> str:
    """The test's name, saying which continuity correction a Wilcoxon test used."""
    if test.get("method") == "wilcoxon":
        return gettext(WILCOXON_NAMES[bool(test.get("continuity_correction"))])
    return named(METHOD_NAMES, test.get("method"), str(test.get("method")))


def display_scale(results: dict, test: dict) -> tuple[float, int, str]:
    """Multiplier, decimals and unit of a test's estimate on the page (as the claims print it)."""
    factor, digits, _unit, unit = scale_of(outcome_of(results, test["outcome"]), test.get("method"))
    return factor, digits, unit


def estimate_label(results: dict, test: dict) -> str:
    """What a test's estimate is, in the unit the page prints it in."""
    outcome = outcome_of(results, test["outcome"])
    _factor, _digits, unit = display_scale(results, test)
    if test.get("method") == "glmm":
        return "AI minus real, log-odds of a correct answer"
    if test.get("method") == "clmm":
        return "AI minus real, log cumulative odds of a higher rating"
    median = test.get("method") == "wilcoxon"
    if outcome.paired or test.get("method") == "lmm":
        what = "pseudo-median of AI minus real" if median else "AI minus real"
    elif outcome.kind in ("proportion", "share"):
        what = (
            "pseudo-median" if median else "share" if outcome.kind == "share" else "accuracy"
        ) + f" minus chance ({outcome.reference_value * 100:g}%)"
    else:
        what = (
            "pseudo-median" if median else outcome.label
        ) + f" minus {outcome.reference_value:g}"
    return f"{what}, {unit}" if unit else what


_TERM_NAMES = {"(Intercept)": "intercept", "conditionai": "AI-versus-real slope"}
_GROUP_NAMES = {"participant": "participants", "identity": "identities"}


def singular_cause(test: dict) -> str:
    """Why a mixed model is singular, from its notes: a zero variance or a ±1 correlation."""
    causes = []
    for note in test.get("notes") or []:
        zero = re.match(r"singular fit: the (\S+) variance for (\w+) is estimated at", note)
        tied = re.match(r"singular fit: the (\S+) effect for (\w+) is perfectly correlated", note)
        if zero:
            causes.append(
                f"the {_TERM_NAMES.get(zero[1], zero[1])} variance across "
                f"{_GROUP_NAMES.get(zero[2], zero[2])} was estimated at zero"
            )
        elif tied:
            causes.append(
                f"the {_TERM_NAMES.get(tied[1], tied[1])} across "
                f"{_GROUP_NAMES.get(tied[2], tied[2])} is perfectly correlated (±1) "
                "with the intercept"
            )
    return "; ".join(causes) or (
        "a random-effect variance was estimated at zero or a correlation at ±1"
    )


_NOTE_PREFIX = re.compile(r"(\w+): (lmm|glmm|clmm)(: | )")
_NOTE_TERM = re.compile(r"the (\S+) (variance|effect) for (participant|identity)\b")


def analysis_note(results: dict, note: str) -> str:
    """One of results.json's notes in the page's words: the outcome and the model named as the
    tables name them, and model terms (conditionai, (Intercept)) in words."""
    prefix = _NOTE_PREFIX.match(note)
    if prefix and prefix[1] in {t.get("outcome") for t in results.get("tests", [])}:
        label = outcome_of(results, prefix[1]).label or prefix[1]
        method = METHOD_NAMES[prefix[2]]
        note = (
            f"{label[0].upper()}{label[1:]}, {method[0].lower()}{method[1:]}"
            f"{prefix[3]}{note[prefix.end() :]}"
        )

    return plain_terms(note)


def plain_terms(note: str) -> str:
    """A model's note with its terms in words: "the (Intercept) variance for identity" reads
    "the intercept variance across identities"."""

    def term(found: re.Match) -> str:
        kind = " variance" if found[2] == "variance" else ""
        return f"the {_TERM_NAMES.get(found[1], found[1])}{kind} across {_GROUP_NAMES[found[3]]}"

    return _NOTE_TERM.sub(term, note)


def test_row(results: dict, test: dict) -> dict:
    """One row of an outcome's test table, in the unit of the claims, every label explicit."""
    factor, digits, _unit = display_scale(results, test)
    alpha = results.get("alpha", 0.05)
    has_ci = test.get("ci_low") is not None and test.get("ci_high") is not None
    return {
        "test": method_name(test),
        "formula": test.get("formula"),
        "singular": bool(test.get("singular")),
        "singular_cause": singular_cause(test) if test.get("singular") else "",
        "converged": test.get("converged", True) is not False,
        "level": named(LEVEL_NAMES, test.get("level")),
        "estimate_label": estimate_label(results, test),
        "estimate": number(_times(test.get("estimate"), factor), digits),
        "ci_label": ci_label(test),
        "ci_unadjusted": ci_unadjusted(test),
        "ci": value_range(
            number(_times(test.get("ci_low"), factor), digits),
            number(_times(test.get("ci_high"), factor), digits),
        )
        if has_ci
        else "—",
        "statistic": statistic_text(test),
        "p": p_value(test.get("p_value"), alpha),
        "p_adjusted": p_value(test.get("p_adjusted"), alpha),
        "family": family_name(results, test.get("family")),
        "effect": (
            f"{named(EFFECT_NAMES, test.get('effect_size_name'))}"
            f" = {number(test.get('effect_size'))}"
            if test.get("effect_size") is not None
            else "—"
        ),
        "n": test.get("n"),
        "preregistered": bool(test.get("preregistered")),
        "bayes": bayes_short(test),
    }


def bayes_short(test: dict) -> str:
    """'BF01 = 6.20 (r = 0.707)' for a test with a Bayes factor, else ''."""
    log_bf10, rscale = test.get("log_bf10"), test.get("bf_rscale")
    if not isinstance(log_bf10, (int, float)) or not math.isfinite(log_bf10):
        return ""
    prior = f" (r = {rscale:.3g})" if isinstance(rscale, (int, float)) else ""
    return bf_label(log_bf10) + prior


def descriptive_row(results: dict, row: dict) -> dict:
    """A descriptives row in the unit the claims use (percent for accuracies and shares)."""
    factor = scale_factor(outcome_of(results, row["outcome"]))
    digits = 1 if factor == 100 else 3
    value = {
        key: number(_times(row.get(key), factor), digits)
        for key in ("mean", "sd", "ci_low", "ci_high", "median")
    }
    return {
        **value,
        "level": named(LEVEL_NAMES, row.get("level")),
        "condition": (
            gettext("Both")
            if row.get("condition") is None
            else named(CONDITION_NAMES, row.get("condition"))
        ),
        "n": row.get("n"),
        "unit": "%" if factor == 100 else "",
    }


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
    ci_label: str = "95% CI"
    bayes: str = ""


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
    label = (
        "AI minus real"
        if outcome.paired
        else ("difference from chance" if outcome.reference_value else "difference from zero")
    )
    unit = display_scale(results, test)[2]
    p = corrected_p(test)
    correction = test.get("correction")
    p_name = {"holm": "Holm-adjusted p ", "bh": "BH-adjusted p "}.get(correction, "p ")
    n = test.get("n")
    return Facts(
        estimate=f"{label}: {number(_times(test.get('estimate'), factor), digits)} {unit}".strip(),
        ci=value_range(
            number(_times(test.get("ci_low"), factor), digits),
            number(_times(test.get("ci_high"), factor), digits),
        ),
        p=p_name + p_value(p, results.get("alpha", 0.05)),
        n=gettext("%(n)s participants", n=n) if n is not None else "—",
        preregistered=bool(finding.get("preregistered")),
        verdict=named(VERDICT_NAMES, finding.get("verdict"), str(finding.get("verdict"))),
        test=named(METHOD_NAMES, test.get("method"), str(test.get("method"))),
        ci_label=ci_label(test),
        bayes=bf_text(test, "" if outcome.paired else " from chance"),
    )


def _times(value: Any, factor: float) -> Any:
    """value * factor, or value itself when it is not a number."""
    return (
        value * factor if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    )


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
    test_rows: list[dict] = field(default_factory=list)
    descriptive_rows: list[dict] = field(default_factory=list)
    hypothesis: str = ""
    sort_key: tuple = ()
    moderation: list[dict] = field(default_factory=list)


MODERATION_UNITS = {"glmm": N_("log-odds"), "clmm": N_("log cumulative odds")}
MODERATION_MODELS = {"clmm": N_("Ordinal mixed model")}


def moderation_view(entry: dict, alpha: float = 0.05) -> dict:
    """One moderator of an outcome for the report: its claim, notes and a row per group."""
    rows = [
        {
            "level": level.get("level"),
            "trials": f"{level.get('n_real', '—')} / {level.get('n_ai', '—')}",
            "estimate": number(level.get("estimate")),
            "ci": value_range(number(level.get("ci_low")), number(level.get("ci_high")))
            if level.get("estimate") is not None
            else "—",
            "p": p_value(level.get("p_value"), alpha),
            "note": plain_terms(level.get("note") or ""),
        }
        for level in entry.get("levels") or []
    ]
    return {
        "moderator": str(entry.get("moderator", "")).replace("_", " "),
        "verdict": entry.get("verdict"),
        "claim": entry.get("claim", ""),
        "unit": named(MODERATION_UNITS, entry.get("method"), ""),
        "model": named(MODERATION_MODELS, entry.get("method"), ""),
        "notes": [plain_terms(n) for n in entry.get("notes") or []],
        "rows": rows,
    }


def figure_outcomes(spec_name: str) -> tuple[str, ...]:
    """The outcomes a figure belongs to (it is shown under the first)."""
    if spec_name == "sdt":
        return ("d_prime", "criterion")
    if spec_name == "memory_sdt":
        return ("memory_d_prime", "memory_criterion")
    if spec_name == "detection":
        return ("detection_accuracy", "detection_d_prime")
    for prefix in ("paired_", "identities_"):
        if spec_name.startswith(prefix):
            return (spec_name[len(prefix) :],)
    return (spec_name,)


def _direct(_name: str, build, *args, **kwargs):
    """Build a section without a guard (the default of the functions below)."""
    return build(*args, **kwargs)


def outcome_section(
    results: dict, name: str, index: int, specs: list[FigureSpec], placed: set[str]
) -> OutcomeSection:
    """One outcome's section with the figures of `specs` that belong to it and are not placed."""
    findings = {f["outcome"]: f for f in results.get("findings", [])}
    hypotheses = {h.get("outcome"): h for h in (results.get("plan") or {}).get("hypotheses", [])}
    outcome = outcome_of(results, name)
    finding = findings.get(name)
    rows = [d for d in results.get("descriptives", []) if d.get("outcome") == name]
    figures = [s for s in specs if s.name not in placed and figure_outcomes(s.name)[0] == name]
    label = outcome.label[0].upper() + outcome.label[1:]
    tests = [t for t in results.get("tests", []) if t.get("outcome") == name]
    hypothesis = hypotheses.get(name)
    section = OutcomeSection(
        name=name,
        label=label,
        finding=finding,
        facts=claim_facts(results, finding) if finding else None,
        descriptives=rows,
        tests=tests,
        figures=figures,
        test_rows=[test_row(results, t) for t in tests],
        descriptive_rows=[descriptive_row(results, d) for d in rows],
        hypothesis=(hypothesis.get("text") or hypothesis.get("direction", ""))
        if hypothesis
        else "",
        sort_key=(not (finding or {}).get("preregistered"), hypothesis is None, index),
        moderation=[
            moderation_view(m, results.get("alpha", 0.05))
            for m in results.get("moderation") or []
            if m.get("outcome") == name
        ],
    )
    placed.update(s.name for s in figures)
    return section


def outcome_sections(results: dict, specs: list[FigureSpec], guard=_direct) -> list:
    """The report's outcome sections in report order, each with its figures.

    Each section is built through `guard(name, build, ...)`, which may return a stand-in
    (survey.findings.sections.SectionError) for a section that cannot be built.
    """
    findings = {f["outcome"]: f for f in results.get("findings", [])}
    placed: set[str] = set()
    # An outcome that could not be tested still has a finding that says why.
    names = dict.fromkeys(outcomes_in(results) + [f["outcome"] for f in findings.values()])
    return [
        guard(f"outcome {name}", outcome_section, results, name, index, specs, placed)
        for index, name in enumerate(names)
    ]


def condition_means(results: dict, name: str) -> tuple[list[dict], bool]:
    """Participant-level means with CIs per condition of an outcome, for a compact table, and
    whether the CIs are within-participant ones (paired outcomes, as on the chart card)."""
    rows = []
    outcome = outcome_of(results, name)
    factor = scale_factor(outcome)
    digits = 1 if factor == 100 else 2
    if outcome.paired:
        cells, within = paired_means(results, outcome)
    else:
        row = descriptive(results, name, None)
        cells = (
            {None: {"mean": row.get("mean"), "low": row.get("ci_low"),
                    "high": row.get("ci_high"), "n": row.get("n")}}
            if row
            else {}
        )  # fmt: skip
        within = False
    for condition, cell in cells.items():
        rows.append(
            {
                "condition": named(CONDITION_NAMES, condition, gettext("All")),
                "mean": number(_times(cell["mean"], factor), digits),
                "ci": value_range(
                    number(_times(cell["low"], factor), digits),
                    number(_times(cell["high"], factor), digits),
                ),
                "n": cell["n"],
            }
        )
    return rows, within


def public_finding(results: dict, finding: dict) -> dict:
    """One finding with its facts and per-condition means, for the public page and embed."""
    test = main_test(results, finding["outcome"])
    means, within = condition_means(results, finding["outcome"])
    return {
        "finding": finding,
        "facts": claim_facts(results, finding),
        "means": means,
        "within": within,
        "label": outcome_of(results, finding["outcome"]).label,
        "has_test": test is not None,
    }


def public_findings(results: dict, guard=_direct) -> list:
    """Each finding with its facts and per-condition means, each built through `guard`."""
    return [
        guard(f"finding {finding.get('outcome')}", public_finding, results, finding)
        for finding in results.get("findings", [])
    ]


# Short row labels of the old/new GLMM's table (it has five columns on a phone).
OLD_NEW_LABELS = {
    "statusstudied_real": N_("Met in a real photo vs foil"),
    "statusstudied_ai": N_("Met in an AI headshot vs foil"),
    "ai_vs_real": N_("AI vs real, people met"),
}


def old_new_rows(results: dict) -> list[dict[str, str]]:
    """The memory test's old/new GLMM as table rows: each status against foils, then AI
    against real among studied people; empty without the fit."""
    fit = (results.get("memory") or {}).get("old_new_glmm")
    if not fit:
        return []
    alpha = results.get("alpha", 0.05)
    rows = [
        {
            "compares": named(OLD_NEW_LABELS, c["term"]),
            "estimate": number(c.get("estimate")),
            "ci": f"[{number(c.get('ci_low'))}, {number(c.get('ci_high'))}]",
            "z": number(c.get("z")),
            "p": p_value(c.get("p_value"), alpha),
        }
        for c in fit.get("coefficients", [])
        if c.get("term") != "(Intercept)"
    ]
    contrast = fit.get("ai_vs_real") or {}
    rows.append(
        {
            "compares": gettext(OLD_NEW_LABELS["ai_vs_real"]),
            "estimate": number(contrast.get("estimate")),
            "ci": f"[{number(contrast.get('ci_low'))}, {number(contrast.get('ci_high'))}]",
            "z": number(contrast.get("z")),
            "p": p_value(contrast.get("p_value"), alpha),
        }
    )
    return rows
