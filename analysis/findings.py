"""Plain-language findings whose wording follows the statistics (rules: docs/analysis.md)."""

from __future__ import annotations

import math
import re
from typing import NamedTuple, TypeGuard

from analysis.bayes import bf_text
from analysis.vocabulary import FIXED_OUTCOMES, Outcome, rating_outcome

MAIN_FAMILIES = ("primary", "secondary")
CORRECTION_NAMES: dict[str | None, str] = {
    "holm": "Holm-adjusted p",
    "bh": "Benjamini-Hochberg-adjusted p",
}
UNIT_NAMES: dict[str | None, tuple[str, str]] = {
    "participant": ("participant", "participants"),
    "identity": ("identity", "identities"),
    "trial": ("trial", "trials"),
}


def _outcome(test: dict) -> Outcome:
    """The Outcome a test dict is about (a rating scale when the name is not a fixed outcome)."""
    name = test.get("outcome")
    if not isinstance(name, str) or not name:
        raise ValueError(f"test has no outcome name: {test!r}")
    if name in FIXED_OUTCOMES:
        return FIXED_OUTCOMES[name]
    scale = test.get("scale")
    return rating_outcome(name, {name: tuple(scale)} if scale else None)


def _finite(value: object) -> TypeGuard[float]:
    """True for a real, finite number."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def corrected_p(test: dict) -> float | None:
    """The p-value that decides a claim: p_adjusted, or p_value when no correction applies.

    Returns None when the test has no usable p-value. Raises ValueError when a correction is
    named but p_adjusted is missing, so that an uncorrected p can never support a claim by
    accident.
    """
    correction = test.get("correction")
    if correction not in (None, "none"):
        if "p_adjusted" not in test:
            raise ValueError(
                f"test of {test.get('outcome')!r} names correction {correction!r} "
                "but has no p_adjusted"
            )
        p = test["p_adjusted"]
    else:
        p = test.get("p_adjusted", test.get("p_value"))
        if p is None:
            p = test.get("p_value")
    return float(p) if _finite(p) else None


def format_p(p: float, alpha: float) -> str:
    """p as text ("= 0.012", "< 0.001") with enough digits never to round across alpha."""
    if p < 0.001:
        return "< 0.001"
    for digits in range(2, 7):
        text = f"{p:.{digits}g}"
        shown = float(text)
        if (shown < alpha) == (p < alpha) and (shown == alpha) == (p == alpha):
            return f"= {text}"
    return f"= {p:.6g}"


def _p_text(test: dict, alpha: float) -> str:
    """'Holm-adjusted p = 0.012' or 'p = 0.3'."""
    p = corrected_p(test)
    name = CORRECTION_NAMES.get(test.get("correction"), "p")
    return f"{name} {format_p(p, alpha)}" if p is not None else f"{name} not available"


def ci_unadjusted(test: dict) -> bool:
    """True when the test's p is adjusted for multiple tests but its interval is not.

    The intervals are the tests' own (unadjusted) intervals; they agree with the adjusted p only
    where the correction left p unchanged, so every other interval must say "unadjusted".
    """
    p, adjusted = test.get("p_value"), test.get("p_adjusted")
    return (
        test.get("correction") not in (None, "none")
        and _finite(p)
        and _finite(adjusted)
        and not math.isclose(p, adjusted, rel_tol=1e-12, abs_tol=0.0)
    )


def ci_label(test: dict) -> str:
    """'95% CI', '90% CI' (a TOST) or 'unadjusted 95% CI', as the interval of a test is."""
    level = test.get("confidence") or (1 - 2 * 0.05 if test.get("method") == "tost" else 0.95)
    return ("unadjusted " if ci_unadjusted(test) else "") + f"{level * 100:g}% CI"


def _tidy(text: str) -> str:
    """Text without the doubled punctuation ('..', ' .', ';;') that joined parts can leave."""
    text = re.sub(r"\s+([.,;:])(?=\s|$)", r"\1", text)
    text = re.sub(r"(?<!\.)\.\s*\.(?!\.)", ".", text)
    text = re.sub(r"(\w)\.\)\.", r"\1).", text)
    return re.sub(r"([,;:])\s*\1", r"\1", text)


def fixed(value: float, digits: int = 2) -> str:
    """A number with fixed decimals and a plain minus sign (no '-0.00').

    The one number format of the claims, the figures' texts and the web report.
    """
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def df_text(df: float) -> str:
    """Degrees of freedom as printed: whole ('112') or with one decimal (Satterthwaite's)."""
    return f"{df:.0f}" if float(df).is_integer() else f"{df:.1f}"


class Scale(NamedTuple):
    """How an outcome's estimates print: multiplier, decimals, and the unit in the claims'
    words and in the web report's shorter ones."""

    factor: float
    digits: int
    unit: str
    page_unit: str


def scale_of(outcome: Outcome, method: str | None) -> Scale:
    """How a test's estimates print, by its method and the kind of outcome."""
    if method == "glmm":
        return Scale(1.0, 2, "on the log-odds scale", "log-odds")
    if method == "clmm":
        return Scale(1.0, 2, "on the log cumulative odds scale", "log cumulative odds")
    if outcome.kind in ("proportion", "share"):
        return Scale(100.0, 1, "percentage points", "percentage points")
    if outcome.kind == "rating":
        assert outcome.scale is not None  # every rating outcome has its scale
        low, high = outcome.scale
        unit = f"points on the {low}–{high} scale"
        return Scale(1.0, 2, unit, unit)
    return Scale(1.0, 2, "", "d′ units" if outcome.kind == "sdt" else "")


def bounds_text(tost: dict, factor: float, digits: int, unit: str, lead: str = "") -> str:
    """An equivalence test's bounds in the unit of the estimate: '±0.30 points on the 1–7
    scale', or `lead` and '-2.0 to 5.0 percentage points' when they are not symmetric."""
    low, high = tost["bound_low"] * factor, tost["bound_high"] * factor
    unit = f" {unit}" if unit else ""
    if math.isclose(-low, high):
        return f"±{fixed(high, digits)}{unit}"
    return f"{lead}{fixed(low, digits)} to {fixed(high, digits)}{unit}"


def _reference_text(outcome: Outcome, test: dict) -> str:
    """The chance level in the unit of the estimate: '50%' for a share, '0' for d'."""
    reference = test.get("reference_value", outcome.reference_value)
    if outcome.kind in ("proportion", "share") and _finite(reference):
        return f"{reference * 100:g}%"
    return f"{reference:g}"


def _test_name(test: dict) -> str:
    """Name and statistic of the test, e.g. 'paired t-test, t(112) = -8.04'."""
    method, stat, df = test.get("method"), test.get("statistic"), test.get("df")
    ref = test.get("reference_value")
    if _finite(ref) and test.get("outcome") in FIXED_OUTCOMES:
        ref_text = _reference_text(FIXED_OUTCOMES[test["outcome"]], test)
    else:
        ref_text = f"{ref:g}" if _finite(ref) else ""
    names: dict[str | None, str] = {
        "paired_t": "paired t-test",
        "one_sample_t": f"one-sample t-test against {ref_text}"
        if _finite(ref)
        else "one-sample t-test",
        "wilcoxon": "Wilcoxon signed-rank test",
        "binomial": "exact binomial test" + (f" against {ref_text}" if _finite(ref) else ""),
        "lmm": "linear mixed model with crossed random effects of participants and identities",
        "glmm": "logistic mixed model with crossed random effects of participants and identities",
        "clmm": "ordinal (cumulative-link) mixed model with crossed random effects of "
        "participants and identities",
        "tost": "equivalence test (TOST)",
    }
    name = names.get(method, str(method))
    if not _finite(stat):
        return name
    if method in ("paired_t", "one_sample_t", "lmm", "tost") and _finite(df):
        return f"{name}, t({df_text(df)}) = {fixed(stat)}"
    if method in ("glmm", "clmm"):
        return f"{name}, z = {fixed(stat)}"
    if method == "wilcoxon":
        return f"{name}, V = {stat:g}"
    return name


def _n_text(test: dict) -> str:
    """'N = 113 participants'."""
    n = test.get("n")
    singular, plural = UNIT_NAMES.get(test.get("level"), ("unit", "units"))
    if not _finite(n):
        return "N not available"
    return f"N = {int(n)} {singular if int(n) == 1 else plural}"


def _contrasts_conditions(outcome: Outcome, test: dict) -> bool:
    """True when the estimate is ai minus real (paired outcomes and every mixed model)."""
    return outcome.paired or test.get("method") in ("lmm", "glmm", "clmm")


def _estimate_text(outcome: Outcome, test: dict, with_unit: bool = True) -> str:
    """'ai minus real = -0.38 points on the 1-7 scale, 95% CI -0.47 to -0.28'."""
    factor, digits, unit, _ = scale_of(outcome, test.get("method"))
    label = (
        "AI minus real"
        if _contrasts_conditions(outcome, test)
        else (f"difference from chance ({_reference_text(outcome, test)})")
    )
    text = f"{label} = {fixed(test['estimate'] * factor, digits)}"
    if unit and with_unit:
        text += f" {unit}"
    if _finite(test.get("ci_low")) and _finite(test.get("ci_high")):
        text += (
            f", {ci_label(test)} {fixed(test['ci_low'] * factor, digits)} to "
            f"{fixed(test['ci_high'] * factor, digits)}"
        )
    else:
        text += f", {ci_label(test)} not available"
    return text


def _difference_sentence(outcome: Outcome, test: dict) -> str:
    """The claim of a difference in plain words, direction first."""
    estimate = test["estimate"]
    lower = estimate < 0
    factor, digits, unit, _ = scale_of(outcome, test.get("method"))
    size = f"by {fixed(abs(estimate) * factor, digits)}" + (f" {unit}" if unit else "")
    name = outcome.name
    if test.get("method") == "glmm":
        often = "less" if lower else "more"
        if name == "memory_hit_rate":
            return (
                f"People met in an AI headshot were recognised in a new photo {often} often "
                "than people met in a real photograph: the log-odds of saying 'met before' "
                f"were {'lower' if lower else 'higher'} by {fixed(abs(estimate), digits)} "
                f"(odds ratio {math.exp(estimate):.2f})"
            )
        lead = (
            f"With AI headshots, people were recognised correctly {often} often than with "
            "real photographs"
            if name == "recognition_accuracy"
            else f"AI headshots were classified correctly {often} often than real photographs"
        )
        return (
            f"{lead}: the log-odds of a correct answer were {'lower' if lower else 'higher'} "
            f"by {fixed(abs(estimate), digits)} (odds ratio {math.exp(estimate):.2f})"
        )
    if test.get("method") == "clmm":
        lead = (
            f"AI headshots were trusted {'less' if lower else 'more'} than real photographs"
            if name == "trust"
            else f"AI headshots were rated {'lower' if lower else 'higher'} than real "
            f"photographs on the {name.replace('_', ' ')} scale"
        )
        return (
            f"{lead}: the log cumulative odds of a higher rating were "
            f"{'lower' if lower else 'higher'} by {fixed(abs(estimate), digits)} (cumulative "
            f"odds ratio {math.exp(estimate):.2f})"
        )
    if outcome.paired:
        if outcome.kind == "rating":
            if name == "trust":
                return (
                    f"AI headshots were trusted {'less' if lower else 'more'} than real "
                    f"photographs {size}"
                )
            return (
                f"AI headshots were rated {'lower' if lower else 'higher'} than real "
                f"photographs on the {name.replace('_', ' ')} scale, {size}"
            )
        if name == "recognition_accuracy":
            return (
                f"People were recognised {'less' if lower else 'more'} accurately from AI "
                f"headshots than from real photographs, {size}"
            )
        if name == "d_prime":
            return (
                f"Recognition sensitivity (d') was {'lower' if lower else 'higher'} with AI "
                f"headshots than with real photographs {size}"
            )
        if name == "memory_hit_rate":
            return (
                f"People met in an AI headshot were later recognised {'less' if lower else 'more'}"
                f" often than people met in a real photograph, {size}"
            )
        if name == "memory_d_prime":
            return (
                f"Memory sensitivity (d') was {'lower' if lower else 'higher'} for people met in"
                f" an AI headshot than for people met in a real photograph {size}"
            )
        if name == "memory_criterion":
            style = "readily" if lower else "cautiously"
            return (
                f"The memory criterion (c) was {'lower' if lower else 'higher'} for people met in"
                f" an AI headshot than in a real photograph {size}: participants answered 'met"
                f" before' more {style}"
            )
        if name == "criterion":
            style = "readily" if lower else "cautiously"
            return (
                f"The response criterion (c) was {'lower' if lower else 'higher'} with AI "
                f"headshots than with real photographs {size}: participants answered "
                f"'same person' more {style}"
            )
    mean = test.get("mean", test.get("proportion"))
    gap = f"by {fixed(abs(estimate) * factor, digits)} {unit}"
    if name == "choice_real":
        share = f" in {mean * 100:.1f}% of pairs" if _finite(mean) else ""
        return (
            f"Participants chose the real photograph over the AI headshot{share}, "
            f"{'less' if lower else 'more'} often than chance (50%) {gap}"
        )
    if name == "detection_accuracy":
        correct = f" with {mean * 100:.1f}% accuracy" if _finite(mean) else ""
        return (
            f"Participants told AI headshots from real photographs{correct}, "
            f"{'worse' if lower else 'better'} than chance (50%) {gap}"
        )
    if name == "detection_d_prime":
        if lower:
            return (
                f"Participants systematically took AI headshots for real photographs and "
                f"real photographs for AI (d' = {fixed(estimate)}, below 0)"
            )
        return (
            f"Participants could tell AI headshots from real photographs "
            f"(d' = {fixed(estimate)}, above 0)"
        )
    return f"The {outcome.label} was {'lower' if lower else 'higher'} {size}"


def _bounds_text(outcome: Outcome, test: dict, tost: dict) -> str:
    """'±0.30 points on the 1-7 scale' or 'the bounds -2.0 to 5.0 percentage points'."""
    factor, digits, unit, _ = scale_of(outcome, test.get("method"))
    return bounds_text(tost, factor, digits, unit, lead="the bounds ")


def _hypothesis_sentence(
    hypothesis: dict | None, verdict: str, estimate: float
) -> tuple[str, bool | None]:
    """What the result means for the preregistered hypothesis, if there is one."""
    if not hypothesis:
        return "", None
    direction = hypothesis.get("direction", "two-sided")
    # The sentence closes the bracket; the researcher's own full stop would double it.
    text = (hypothesis.get("text") or f"{hypothesis['outcome']}: {direction}").strip()
    text = text.rstrip(".;:, ") or text
    if verdict != "difference":
        return f" The preregistered hypothesis ({text}) was not supported.", False
    matches = (
        direction == "two-sided"
        or (direction == "less" and estimate < 0)
        or (direction == "greater" and estimate > 0)
    )
    if matches:
        return f" This supports the preregistered hypothesis ({text}).", True
    return (
        f" The difference runs opposite to the preregistered hypothesis ({text}), which is "
        "therefore not supported."
    ), False


def finding(
    test: dict, alpha: float = 0.05, equivalence: dict | None = None, hypothesis: dict | None = None
) -> dict:
    """Word one test's result as a claim the statistics support.

    Parameters
    ----------
    test : dict
        A test as in results.json: ``outcome``, ``method``, ``level``, ``estimate`` (ai minus
        real, or minus chance), ``ci_low``, ``ci_high``, ``p_value``, ``p_adjusted``,
        ``correction``, ``n``; optionally ``statistic``, ``df``, ``confidence``, ``scale``,
        ``reference_value``, ``mean``, ``preregistered`` and the Bayes factor's ``log_bf10``
        and ``bf_rscale`` (worded beside the TOST; it does not change the verdict).
    alpha : float
        Significance level of the (corrected) test and of the TOST.
    equivalence : dict, optional
        The TOST of the same outcome against the preregistered bounds (``method`` "tost",
        ``bound_low``, ``bound_high``, ``p_value``/``p_adjusted``).
    hypothesis : dict, optional
        The preregistered hypothesis on this outcome ({outcome, direction, text}); tests stay
        two-sided, the sentence says whether the observed direction matches.

    Returns
    -------
    dict
        ``claim`` (one or two sentences naming the estimate, its CI, the test, the p-value and N),
        ``verdict`` ("difference", "no_difference" or "inconclusive"), ``outcome``,
        ``preregistered`` (bool) and ``hypothesis_supported`` (bool, or None without hypothesis).

    Notes
    -----
    - "difference" only when the corrected p (`corrected_p`) is below alpha;
    - "no_difference" only when the difference is not significant and the TOST is (its corrected
      p below alpha, i.e. the 1 - 2 alpha interval lies inside the bounds);
    - otherwise "inconclusive", saying why (no bounds preregistered, or equivalence not shown).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha!r}")
    outcome = _outcome(test)
    if not _finite(test.get("estimate")):
        raise ValueError(
            f"test of {outcome.name!r} has no finite estimate: {test.get('estimate')!r}"
        )
    if equivalence is not None:
        if equivalence.get("method") != "tost" or equivalence.get("outcome") != outcome.name:
            raise ValueError(
                f"equivalence must be the TOST of {outcome.name!r}, got "
                f"{equivalence.get('method')!r} of {equivalence.get('outcome')!r}"
            )
        if equivalence.get("level") != test.get("level"):
            raise ValueError(
                f"equivalence test level {equivalence.get('level')!r} differs from "
                f"the test's {test.get('level')!r}"
            )
    p = corrected_p(test)
    p_equivalence = corrected_p(equivalence) if equivalence is not None else None
    significant = p is not None and p < alpha
    equivalent = p_equivalence is not None and p_equivalence < alpha

    evidence = f"; {_test_name(test)}, {_p_text(test, alpha)}"
    bounds = ""
    if equivalence is not None:
        bounds = _bounds_text(outcome, test, equivalence)
        evidence += f"; equivalence test (TOST) against {bounds}, {_p_text(equivalence, alpha)}"
    against = "" if _contrasts_conditions(outcome, test) else " from chance"
    if bf_text(test):
        evidence += f"; {bf_text(test, against)}"
    evidence += f"; {_n_text(test)}"
    details = _estimate_text(outcome, test) + evidence
    versus = (
        "between AI headshots and real photographs"
        if _contrasts_conditions(outcome, test)
        else f"from chance ({_reference_text(outcome, test)})"
    )

    if significant:
        verdict = "difference"
        # The sentence already gives the size in its unit; the brackets repeat only the numbers.
        claim = (
            f"{_difference_sentence(outcome, test)} "
            f"({_estimate_text(outcome, test, with_unit=False)}{evidence})."
        )
        if _has_interval(test) and not _excludes_zero(test):
            # A test whose p does not come from this interval (a rank test, a model's own
            # degrees of freedom): say why the two seem to disagree.
            claim += (
                f" Its {ci_label(test)} still includes "
                f"{'zero' if _contrasts_conditions(outcome, test) else 'chance'}: the p-value "
                f"of the {_test_name(test).split(',')[0]} is not computed from this interval, "
                "so the test supports the direction of the difference while its size is "
                "uncertain."
            )
        if equivalent:
            claim += (
                f" The difference lies within the preregistered equivalence bounds "
                f"({bounds}), so it may be too small to "
                "matter."
            )
    elif equivalent:
        verdict = "no_difference"
        claim = (
            f"There was no reliable difference in {outcome.label} {versus}: any difference "
            f"lies within {bounds} ({details})."
        )
    else:
        verdict = "inconclusive"
        if p is None:
            reason = "the test could not be computed"
        elif _excludes_zero(test):
            # The interval is the unadjusted one: say why it and the verdict differ.
            reason = (
                f"the unadjusted {ci_label(test).split(' ', 1)[1]} excludes zero (p "
                f"{format_p(float(test['p_value']), alpha)} before correction), but after "
                f"correcting for the other tests of its family the {_p_text(test, alpha)} "
                f"is not below α = {alpha:g}, so no difference is claimed"
            )
            if equivalence is None:
                reason += "; no equivalence bounds were preregistered"
        elif equivalence is None:
            reason = (
                "no equivalence bounds were preregistered, so the absence of a difference "
                "cannot be shown"
            )
        elif p_equivalence is None:
            reason = "the equivalence test could not be computed"
        else:
            reason = (
                f"equivalence within {_bounds_text(outcome, test, equivalence)} was not "
                "shown either"
            )
        claim = (
            f"the data neither show a difference in {outcome.label} {versus} "
            f"nor rule one out ({details}); {reason}."
        )
    extra, supported = _hypothesis_sentence(hypothesis, verdict, test["estimate"])
    preregistered = bool(test.get("preregistered"))
    return {
        "claim": _tidy(f"{_prefix(preregistered, verdict)}: {claim}{extra}"),
        "verdict": verdict,
        "outcome": outcome.name,
        "preregistered": preregistered,
        "hypothesis_supported": supported,
    }


def _prefix(preregistered: bool, verdict: str) -> str:
    """'Preregistered', or 'Exploratory (inconclusive)': one label, one colon after it."""
    prefix = "Preregistered" if preregistered else "Exploratory"
    return f"{prefix} (inconclusive)" if verdict == "inconclusive" else prefix


def _has_interval(test: dict) -> bool:
    """True when the test has a finite interval."""
    return _finite(test.get("ci_low")) and _finite(test.get("ci_high"))


def _excludes_zero(test: dict) -> bool:
    """True when the test's (unadjusted) interval lies wholly above or below zero."""
    return _has_interval(test) and (test["ci_low"] > 0 or test["ci_high"] < 0)


def untested_finding(
    outcome: str, reason: str, preregistered: bool = False, hypothesis: dict | None = None
) -> dict:
    """The finding of an outcome whose main test could not be run: inconclusive, with why.

    So that an outcome, above all a preregistered one, never silently drops out of the findings.
    Returns the keys of `finding` with ``supported_by`` = [].
    """
    label = _outcome({"outcome": outcome}).label
    why = reason.strip().rstrip(".")
    claim = f"{_prefix(preregistered, 'inconclusive')}: {label} could not be tested ({why})."
    if hypothesis:
        text = (hypothesis.get("text") or outcome).strip().rstrip(".;:, ") or outcome
        claim += f" The preregistered hypothesis ({text}) was not supported."
    return {
        "claim": _tidy(claim),
        "verdict": "inconclusive",
        "outcome": outcome,
        "preregistered": preregistered,
        "hypothesis_supported": False if hypothesis else None,
        "supported_by": [],
    }


def findings_for(
    tests: list[dict], alpha: float = 0.05, hypotheses: list[dict] | None = None
) -> list[dict]:
    """One finding per outcome, from its main participant-level test, with `supported_by`.

    Parameters
    ----------
    tests : list of dict
        The ``tests`` list of results.json.
    alpha : float
        Significance level.
    hypotheses : list of dict, optional
        The plan's hypotheses.

    Returns
    -------
    list of dict
        The dicts of `finding`, each with ``supported_by``: indices into ``tests`` of the main
        test (family "primary" or "secondary") and, when there is one, of the TOST of the same
        outcome and level.
    """
    by_outcome = {h["outcome"]: h for h in hypotheses or []}
    out = []
    for i, test in enumerate(tests):
        if test.get("family") not in MAIN_FAMILIES:
            continue
        tost = next(
            (
                j
                for j, t in enumerate(tests)
                if t.get("method") == "tost"
                and t.get("outcome") == test.get("outcome")
                and t.get("level") == test.get("level")
            ),
            None,
        )
        result = finding(
            test,
            alpha,
            tests[tost] if tost is not None else None,
            by_outcome.get(test.get("outcome")),
        )
        result["supported_by"] = [i] + ([tost] if tost is not None else [])
        out.append(result)
    return out


def moderator_label(entry: dict) -> str:
    """'the gender of the person photographed' or "participants' ai familiarity"."""
    words = str(entry.get("moderator", "")).replace("_", " ")
    if entry.get("source") == "identity":
        return f"the {words} of the person photographed"
    return f"participants' {words}"


def moderation_claim(entry: dict, alpha: float = 0.05) -> tuple[str, str]:
    """Verdict and plain sentence of one condition x moderator test (results.json moderation).

    "differs" only when the (adjusted) likelihood-ratio test is below alpha, then with the
    estimate of each group; otherwise "no_evidence", which says no more than that (a test that
    does not reject is not evidence that every group is alike); "not_tested" with the reason.
    """
    label = moderator_label(entry)
    lrt = entry.get("lrt") or {}
    p = corrected_p(entry)
    if not entry.get("tested") or p is None or not _finite(lrt.get("statistic")):
        notes = [n for n in entry.get("notes", []) if "not tested" in n or "cannot" in n]
        why = notes[-1].rstrip(".") if notes else "the model could not be fitted"
        return "not_tested", _tidy(f"Not tested whether the effect differs by {label}: {why}.")
    outcome = _outcome(entry)
    factor, digits, unit, _ = scale_of(outcome, entry.get("method"))
    chisq = f"χ²({lrt['df']}) = {fixed(lrt['statistic'], 2)}"
    model = "ordinal mixed model, " if entry.get("method") == "clmm" else ""
    test = f"{model}likelihood-ratio test {chisq}, {_p_text(entry, alpha)}"
    if p >= alpha:
        return "no_evidence", _tidy(
            f"No evidence that the AI-minus-real difference in {outcome.label} differs by "
            f"{label} ({test}). This does not show that it is the same for every group: "
            "each group's estimate below is less precise than the overall one."
        )
    parts = [
        f"{lv['level']}: {fixed(lv['estimate'] * factor, digits)} "
        f"[{fixed(lv['ci_low'] * factor, digits)}, {fixed(lv['ci_high'] * factor, digits)}]"
        for lv in entry.get("levels", [])
        if _finite(lv.get("estimate")) and _finite(lv.get("ci_low")) and _finite(lv.get("ci_high"))
    ]
    plan = "as preregistered" if entry.get("preregistered") else "an exploratory test"
    return "differs", _tidy(
        f"The AI-minus-real difference in {outcome.label} differs by {label} ({test}; {plan}). "
        f"AI minus real{' (' + unit + ')' if unit else ''}, 95% CI: {'; '.join(parts)}."
    )
