"""The public page's plain-language summary for studios: one sentence a claim, and its limits."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from analysis.bayes import bf_sentence
from analysis.findings import bounds_text, ci_label, ci_unadjusted
from analysis.results import outcome_of
from survey.findings.present import display_scale, number

# What a difference means in everyday words, per outcome: (lower, higher) phrases for paired
# outcomes (AI minus real below or above zero) and one-sample ones (below or above chance).
_PAIRED = {
    "trust": (
        "People trusted AI headshots less than real photographs",
        "People trusted AI headshots more than real photographs",
    ),
    "recognition_accuracy": (
        "People were recognised less accurately from AI headshots than from real photographs",
        "People were recognised more accurately from AI headshots than from real photographs",
    ),
    "d_prime": (
        ("Recognition sensitivity (d′) was lower with AI headshots than with real photographs"),
        ("Recognition sensitivity (d′) was higher with AI headshots than with real photographs"),
    ),
    "criterion": (
        (
            "Participants answered “same person” more readily with AI headshots than "
            "with real photographs"
        ),
        (
            "Participants answered “same person” more cautiously with AI headshots than "
            "with real photographs"
        ),
    ),
    "memory_hit_rate": (
        "People met in an AI headshot were recognised in person less often than people met in "
        "a real photograph",
        "People met in an AI headshot were recognised in person more often than people met in "
        "a real photograph",
    ),
    "memory_d_prime": (
        "Memory for people met in an AI headshot was less sensitive (d′) than for people met in "
        "a real photograph",
        "Memory for people met in an AI headshot was more sensitive (d′) than for people met in "
        "a real photograph",
    ),
    "memory_criterion": (
        "Participants said “met before” more readily of people met in an AI headshot than of "
        "people met in a real photograph",
        "Participants said “met before” more cautiously of people met in an AI headshot than of "
        "people met in a real photograph",
    ),
}
_ONE_SAMPLE = {
    "choice_real": (
        ("People chose the real photograph over the AI headshot less often than chance"),
        ("People chose the real photograph over the AI headshot more often than chance"),
    ),
    "detection_accuracy": (
        "People told AI headshots from real photographs worse than chance",
        "People told AI headshots from real photographs better than chance",
    ),
    "detection_d_prime": (
        ("People tended to take AI headshots for real photographs and real photographs for AI"),
        "People could tell AI headshots from real photographs",
    ),
}
# What was compared, for "no reliable difference" and "cannot say" sentences.
_SUBJECT = {
    "trust": "how much people trusted AI headshots and real photographs",
    "recognition_accuracy": "how accurately people were recognised from AI headshots and from "
    "real photographs",
    "d_prime": "recognition sensitivity (d′) with AI headshots and with real photographs",
    "criterion": "the response criterion (c) with AI headshots and with real photographs",
    "choice_real": "how often people chose the real photograph and chance (50%)",
    "detection_accuracy": "people's accuracy at telling AI headshots from real photographs and "
    "chance (50%)",
    "detection_d_prime": "people's sensitivity (d′) to AI headshots and zero",
    "memory_hit_rate": "how often people met in an AI headshot and in a real photograph were "
    "recognised later",
    "memory_d_prime": "memory sensitivity (d′) for people met in an AI headshot and in a real "
    "photograph",
    "memory_criterion": "the memory criterion (c) for people met in an AI headshot and in a real "
    "photograph",
}


@dataclass
class StudioSummary:
    """Sentences, one a finding, and what the study cannot tell."""

    sentences: list[dict] = field(default_factory=list)
    cannot: list[str] = field(default_factory=list)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _paired(results: dict, test: dict) -> bool:
    return outcome_of(results, test["outcome"]).paired


def _unit(results: dict, test: dict) -> tuple[float, int, str]:
    """Multiplier, decimals and unit words of the report ("points on the 1–7 scale", …)."""
    return display_scale(results, test)


def _subject(results: dict, name: str) -> str:
    if name in _SUBJECT:
        return _SUBJECT[name]
    outcome = outcome_of(results, name)
    if outcome.kind == "rating":
        return (
            f"how people rated AI headshots and real photographs on the "
            f"{name.replace('_', ' ')} scale"
        )
    return f"the {outcome.label} with AI headshots and with real photographs"


def _lead(results: dict, test: dict) -> str:
    """The direction of a difference in everyday words."""
    name, lower = test["outcome"], test["estimate"] < 0
    phrases = _PAIRED.get(name) or _ONE_SAMPLE.get(name)
    if phrases:
        return phrases[0 if lower else 1]
    outcome = outcome_of(results, name)
    if outcome.kind == "rating":
        scale = name.replace("_", " ")
        return (
            f"People rated AI headshots {'lower' if lower else 'higher'} than real "
            f"photographs on the {scale} scale"
        )
    return f"The {outcome.label} was {'lower' if lower else 'higher'} with AI headshots"


def _reference(results: dict, test: dict) -> str:
    outcome = outcome_of(results, test["outcome"])
    reference = test.get("reference_value", outcome.reference_value)
    if outcome.kind in ("proportion", "share"):
        return f"the chance level of {reference * 100:g}%"
    return f"{reference:g}"


def _signed(results: dict, test: dict) -> str:
    """'the difference, AI minus real, was -0.10 points on the 1–7 scale (95% CI -0.40 to 0.20)'."""
    factor, digits, unit = _unit(results, test)
    what = (
        "the difference, AI minus real,"
        if _paired(results, test)
        else f"the difference from {_reference(results, test)}"
    )
    return (
        f"{what} was {number(test['estimate'] * factor, digits)}{' ' + unit if unit else ''} "
        f"({ci_label(test)} {number(test['ci_low'] * factor, digits)} to "
        f"{number(test['ci_high'] * factor, digits)})"
    )


def _size(results: dict, test: dict) -> str:
    """'0.40 points on the 1–7 scale lower (95% CI 0.20 to 0.60)', magnitudes on one side of
    zero; the signed difference when the interval reaches the other side."""
    factor, digits, unit = _unit(results, test)
    estimate, low, high = (test[k] * factor for k in ("estimate", "ci_low", "ci_high"))
    lower = estimate < 0
    if (lower and high < 0) or (not lower and low > 0):
        near, far = sorted((abs(low), abs(high)))
        if _paired(results, test):
            side = "lower" if lower else "higher"
        else:
            side = f"{'below' if lower else 'above'} {_reference(results, test)}"
        size = number(abs(estimate), digits)
        if unit.startswith("points on the "):  # "0.40 points lower on the 1–7 scale"
            amount = f"{size} points {side} {unit.removeprefix('points ')}"
        else:
            amount = f"{size}{' ' + unit if unit else ''} {side}"
        return f"{amount} ({ci_label(test)} {number(near, digits)} to {number(far, digits)})"
    return _signed(results, test)


def _participants(test: dict) -> str:
    n = test.get("n")
    if not _finite(n):
        return ""
    return f"{int(n)} participant{'' if int(n) == 1 else 's'}"


def _bounds(results: dict, test: dict, tost: dict | None) -> str:
    if not tost or not _finite(tost.get("bound_low")) or not _finite(tost.get("bound_high")):
        return "the bounds set in advance"
    return bounds_text(tost, *_unit(results, test))


def sentence(results: dict, finding: dict) -> str:
    """The plain-language sentence of one finding, worded by its verdict."""
    tests = results.get("tests", [])
    indices = [i for i in finding.get("supported_by") or [] if 0 <= i < len(tests)]
    name = finding["outcome"]
    if not indices:
        return f"The study could not test {_subject(results, name)}, so it says nothing about it."
    test = tests[indices[0]]
    tost = next((tests[i] for i in indices[1:] if tests[i].get("method") == "tost"), None)
    usable = all(_finite(test.get(k)) for k in ("estimate", "ci_low", "ci_high"))
    n = _participants(test)
    tail = f" {n[0].upper()}{n[1:]}." if n else ""
    verdict = finding.get("verdict")
    if not usable:
        return (
            f"The study cannot say anything about {_subject(results, name)}: the estimate "
            f"could not be computed.{tail}"
        )
    if verdict == "difference":
        text = f"{_lead(results, test)}: {_size(results, test)}"
        return f"{text}, {n}." if n else f"{text}."
    if verdict == "no_difference":
        return (
            f"There was no reliable difference between {_subject(results, name)}: "
            f"{_signed(results, test)}, and an equivalence test showed that any difference "
            f"lies within {_bounds(results, test, tost)}, the range the researchers set in "
            f"advance as too small to matter.{tail}{_bayes(results, test)}"
        )
    why = ""
    if ci_unadjusted(test) and (test["ci_low"] > 0 or test["ci_high"] < 0):
        why = (
            " The interval leaves out zero, but after correcting for the number of tests "
            "the difference is not reliable."
        )
    return (
        f"The study cannot say whether there is a difference between "
        f"{_subject(results, name)}: {_signed(results, test)}.{why}{tail} This is not "
        f"evidence that there is no difference.{_bayes(results, test)}"
    )


def _bayes(results: dict, test: dict) -> str:
    """' A Bayes factor adds that the data are 6 times more likely under no difference ...'."""
    log_bf10 = test.get("log_bf10")
    if not _finite(log_bf10):
        return ""
    against = "" if outcome_of(results, test["outcome"]).paired else " from chance"
    words = bf_sentence(None, log_bf10, against)
    rscale = test.get("bf_rscale")
    prior = (
        f" (it depends on the difference expected in advance: half the prior weight on "
        f"standardised differences below r = {rscale:.3g})"
        if _finite(rscale)
        else ""
    )
    if words.startswith("inconclusive: "):
        words = words[len("inconclusive: ") :].split(" (", 1)[0]
        return f" A Bayes factor is inconclusive: {words}{prior}."
    return f" A Bayes factor adds that {words}{prior}."


def studio_summary(results: dict) -> StudioSummary:
    """Each finding's sentence (with its verdict) and the list of what the study cannot say."""
    summary = StudioSummary()
    findings = results.get("findings", [])
    for finding in findings:
        summary.sentences.append(
            {
                "outcome": finding["outcome"],
                "verdict": finding.get("verdict"),
                "preregistered": bool(finding.get("preregistered")),
                "text": sentence(results, finding),
            }
        )
    n, faces = results.get("n_participants"), results.get("n_identities")
    who = (
        f"{faces} people's faces shown to {n} participants"
        if faces and n
        else "the faces and participants of this study"
    )
    summary.cannot.append(
        f"Whether the results hold beyond {who}: other faces, other AI tools, other audiences "
        "or other settings may give other results."
    )
    summary.cannot.append(
        "Whether AI headshots cause more or fewer bookings, sales or hires: participants rated "
        "and recognised photographs in a study, they did not make real decisions."
    )
    verdicts = {f.get("verdict") for f in findings}
    if "inconclusive" in verdicts:
        summary.cannot.append(
            "Whether there is a difference where a result is inconclusive: an inconclusive "
            "result is not evidence of no difference."
        )
    if "no_difference" in verdicts:
        summary.cannot.append(
            "That a difference is exactly zero: “no reliable difference” means any difference "
            "is smaller than the bounds set in advance."
        )
    if any(not f.get("preregistered") for f in findings):
        summary.cannot.append(
            "Whether the exploratory results are more than chance findings: they were not "
            "planned in advance and need a new study to confirm them."
        )
    return summary


def embed_sentences(summary: StudioSummary, limit: int = 3) -> list[dict]:
    """The sentences an embed shows: preregistered findings first, at most `limit`.

    An embed is a fixed-height frame: it names the rest and links to the full page.
    """
    ordered = sorted(summary.sentences, key=lambda s: not s["preregistered"])
    return ordered[:limit]
