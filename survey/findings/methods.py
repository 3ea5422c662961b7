"""The methods paragraph of a report, written from the study's design and its analysis."""

from __future__ import annotations

import math
from typing import Any

from analysis.findings import CORRECTION_NAMES
from analysis.vocabulary import DEFAULT_RULES, FIXED_OUTCOMES
from survey.block_settings import (
    MEMORY_TASKS,
    NAME_PLACEHOLDER,
    attention_check_count,
    names_people,
)

TASK_PHRASES = {
    "match": "a recognition block ({name}): a headshot (real or AI) and an in-person probe photo "
    "{presentation}; participants answered whether both showed the same person{confidence}",
    "rate": "a first-impression block ({name}): one headshot at a time, rated on {scales}",
    "detect": "an AI-detection block ({name}): one headshot at a time, judged a real photograph "
    "or AI-generated{confidence}",
    "choose": "a paired-preference block ({name}): the real and the AI headshot of one person side "
    "by side (sides counterbalanced), answering “{question}”",
    "learn": "the study phase of a memory test ({name}): half the identities, each met once in "
    "its headshot (half of them real, half AI, by list), {exposure}{label}{orienting}",
    "recognise": "the test phase of the memory test ({name}){delay}: every identity once in a new "
    "in-person photo, the people met in the study phase mixed with as many never shown (foils), "
    "answering “{question}”{confidence}{names}",
}
REASON_WORDS = {
    "incomplete": "did not finish",
    "attention": "failed an attention check",
    "median_rt": "answered implausibly fast (median response time below the limit)",
    "straightlining": "gave the same rating on every rating trial",
}
SOURCE_NAMES = {
    "prolific": "Prolific",
    "mturk": "Mechanical Turk",
    "sona": "SONA",
    "link": "a direct link",
}


def _count(n: int, singular: str, plural: str | None = None) -> str:
    """'1 participant', '3 participants'."""
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"


def _join(items: list[str], last: str = "and") -> str:
    """'a', 'a and b', 'a, b and c' (or with another last word)."""
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {last} " + items[-1]


def _label(name: str) -> str:
    """An outcome's name in words."""
    outcome = FIXED_OUTCOMES.get(name)
    return (
        outcome.label
        if outcome
        else ("trust" if name == "trust" else f"ratings of {name.replace('_', ' ')}")
    )


def _delay_words(settings: dict) -> str:
    """Say what came between a memory test's study and test phases besides the filler."""
    parts = []
    hours = settings.get("delay_hours") or 0
    if hours:
        span = (
            f"{hours // 24} day{'s' if hours // 24 != 1 else ''}"
            if hours % 24 == 0
            else f"{hours} hour{'s' if hours != 1 else ''}"
        )
        parts.append(
            f"in a second session at least {span} later (participants came back through a "
            "personal return link or code)"
        )
    seconds = settings.get("distractor_s") or 0
    if seconds:
        parts.append(
            f"{'then ' if parts else ''}after a {seconds}-second distractor task of simple sums "
            "(not analysed)"
        )
    return ", " + ", ".join(parts) if parts else ""


def _sequence(settings: dict[str, Any]) -> str:
    """A sequential match's phases in order, each in ms exactly as the block ran them."""
    steps = [
        f"a fixation cross for {settings['fixation_ms']} ms" if settings.get("fixation_ms") else "",
        f"the headshot alone for {settings.get('exposure_ms', 1500)} ms",
        f"a pattern mask for {settings['mask_ms']} ms" if settings.get("mask_ms") else "",
        f"a blank screen for {settings['isi_ms']} ms" if settings.get("isi_ms") else "",
        "the probe photo until the answer",
    ]
    return ", then ".join(step for step in steps if step)


def _block_phrase(block: dict[str, Any], first: bool = False, n_identities: int = 0) -> str:
    """One block in words: its task and each of its settings as it ran.

    `first` tells whether the block ran first (a practice trial by default); `n_identities`
    is the study's, against which a cap on the identities shown is told.
    """
    settings = block.get("settings") or {}
    confidence = " and how sure they were (1–5)" if settings.get("confidence", True) else ""
    presentation = (
        "side by side"
        if settings.get("presentation", "side_by_side") == "side_by_side"
        else f"one after the other ({_sequence(settings)})"
    )
    scales = (
        _join(
            [
                f"{s.get('key', '').replace('_', ' ')} ({s.get('min', 1)}–{s.get('max', 7)}"
                f"{', “' + s['question'] + '”' if s.get('question') else ''})"
                for s in settings.get("scales", [])
            ]
        )
        or "a rating scale"
    )
    task = block.get("task")
    exposure = settings.get("exposure_ms", 3000)
    label = settings.get("label") or ""
    orienting = settings.get("orienting_question") or ""
    default_question = (
        "Have you met this person before?"
        if task == "recognise"
        else "Which photo do you trust more?"
    )
    phrase = TASK_PHRASES.get(task, "a {name} block").format(
        name=block.get("name", ""),
        presentation=presentation,
        confidence=confidence,
        scales=scales,
        question=settings.get("question", default_question),
        exposure=(
            f"for {exposure} ms"
            if exposure
            else "for as long as the participant chose (self-paced)"
        ),
        label=(
            f", labelled “{label.replace(NAME_PLACEHOLDER, '<name>')}” with a fictional name per "
            "person (names drawn per participant)"
            if names_people(label)
            else f", labelled “{label}”"
            if label
            else ""
        ),
        orienting=f", answering “{orienting}” (1–5)" if orienting else "",
        names=(
            ", then, after a yes, choosing the person's name from four studied names"
            if settings.get("name_recall")
            else ""
        ),
        delay=_delay_words(settings),
    )
    cap = settings.get("n_identities")
    if (
        isinstance(cap, int)
        and not isinstance(cap, bool)
        and 0 < n_identities
        and cap < n_identities
    ):
        split = "" if task == "choose" else ", split evenly between the conditions"
        phrase += f", showing {cap} of the {n_identities} identities{split} (drawn per participant)"
    practice = settings.get("practice")
    # Learn and recognise blocks have no practice trial, even when they run first.
    if task not in MEMORY_TASKS and (practice or (practice is None and first)):
        phrase += ", opened by a practice trial (not analysed)"
    checks = attention_check_count(settings.get("attention_checks"))
    if checks:
        phrase += f", with {_count(checks, 'attention check')}"
    return phrase


def _rules_sentence(results: dict[str, Any]) -> str:
    """Which exclusion rules applied, preregistered or the defaults."""
    plan = results.get("plan")
    rules = ((plan or {}).get("exclusions")) or DEFAULT_RULES
    parts = []
    if rules.get("incomplete"):
        parts.append("did not finish")
    if rules.get("attention"):
        parts.append("failed any attention check")
    if rules.get("min_median_rt_ms") is not None:
        parts.append(f"had a median response time under {rules['min_median_rt_ms']:g} ms")
    if rules.get("straightlining"):
        parts.append("gave the same rating on every rating trial")
    origin = "the preregistered rules" if plan else "the default rules (none were preregistered)"
    if not parts:
        return f"No exclusion rule applied ({origin})."
    return f"Following {origin}, participants were excluded if they {_join(parts, 'or')}."


def _sample_sentence(sample: dict[str, Any]) -> str:
    """Recruited, withdrawn, excluded with reasons, included, per list and device."""
    recruited = sample.get("recruited", 0)
    sources = sample.get("sources") or {}
    via = (
        " through " + _join([f"{SOURCE_NAMES.get(s, s)} ({n})" for s, n in sources.items()])
        if len(sources) > 1
        else (f" through {SOURCE_NAMES.get(next(iter(sources)), '')}" if sources else "")
    )
    text = f"{_count(recruited, 'participant')} took part{via}"
    included_simulated = sample.get("simulated_included", 0)
    if included_simulated:
        text += (
            f", {included_simulated} of them simulated by the study platform to test the "
            "study, not people"
        )
    withdrawn = sample.get("withdrawn", 0)
    if withdrawn:
        text += (
            f"; {_count(withdrawn, 'further participant')} withdrew and "
            f"{'their data were' if withdrawn > 1 else 'the data were'} deleted"
        )
    text += "."
    reasons = sample.get("reasons") or {}
    excluded = sample.get("excluded", 0)
    if excluded:
        why = _join([f"{n} {REASON_WORDS.get(r, r)}" for r, n in reasons.items()])
        text += (
            f" {_count(excluded, 'participant was', 'participants were')} excluded"
            + (
                f" ({why}; a participant can meet more than one rule)"
                if len(reasons) > 1
                else f" ({why})"
                if why
                else ""
            )
            + "."
        )
    lists = sample.get("by_list") or []
    devices = [d for d in sample.get("by_device") or [] if d.get("included")]
    text += f" The analysis includes {_count(sample.get('included', 0), 'participant')}"
    if len(lists) > 1:
        text += " (" + ", ".join(f"list {row['list']}: {row['included']}" for row in lists)
        if devices:
            text += "; " + ", ".join(f"{row['device']}: {row['included']}" for row in devices)
        text += ")"
    text += "."
    left_out = sample.get("simulated_excluded", 0)
    if left_out:
        text += (
            f" {_count(left_out, 'simulated participant')} (test runs by the study "
            f"platform, not people) {'was' if left_out == 1 else 'were'} left out of "
            "these counts and of the analysis."
        )
    return text


def _tests_sentence(results: dict[str, Any]) -> str:
    """The tests run, the corrections and the software."""
    tests = results.get("tests", [])
    methods = {t.get("method") for t in tests}
    outcomes = list(dict.fromkeys(t.get("outcome") for t in tests))
    paired = [o for o in outcomes if o not in FIXED_OUTCOMES or FIXED_OUTCOMES[o].paired]
    # Said as the tests ran (R's wilcox.test defaults to correct = TRUE; the report's do not).
    corrected = any(t.get("continuity_correction") for t in tests if t.get("method") == "wilcoxon")
    continuity = "with" if corrected else "no"
    single = [o for o in outcomes if o in FIXED_OUTCOMES and not FIXED_OUTCOMES[o].paired]
    sentences = []
    if paired:
        sentences.append(
            "For each within-participant outcome ("
            + _join([_label(o) for o in paired])
            + "), each participant's mean in the AI condition was compared with their mean in the "
            "real condition by a paired t-test (effect size d_z) and a Wilcoxon signed-rank test "
            f"(normal approximation, {continuity} continuity correction); the same tests were "
            "repeated over "
            "identities (each identity's mean across participants) to check that the effects "
            "generalise over the people photographed. The condition plots show each "
            "condition's mean with a 95% within-participant confidence interval (Cousineau, "
            "2005, with Morey's 2008 correction), which leaves out differences between "
            "participants as the paired test does."
        )
    if single:
        sentences.append(
            "Shares and accuracies against chance ("
            + _join([_label(o) for o in single])
            + ") were tested per participant with one-sample t-tests and Wilcoxon tests against "
            "50% (0 for d′)"
            + (", and over all trials with exact binomial tests" if "binomial" in methods else "")
            + "."
        )
    if {"d_prime", "detection_d_prime", "memory_d_prime"} & set(outcomes):
        sentences.append(
            "Signal-detection measures (d′ and c) used the log-linear correction (Hautus, 1995)."
        )
    if "memory_d_prime" in outcomes:
        sentences.append(
            "In the memory test, a hit was a “yes” to a person met in the study phase and a false "
            "alarm a “yes” to a foil; hit rates were computed per condition the person was met "
            "in (real or AI headshot) and each participant's one false-alarm rate, over all "
            "foils, served both conditions (foils were never studied)"
            + (
                ", and the hits were modelled with a logistic mixed model "
                "(said old ~ condition + (1 | participant) + (1 | identity))"
                if any(
                    t.get("outcome") == "memory_hit_rate" and t.get("method") == "glmm"
                    for t in tests
                )
                else ""
            )
            + "."
        )
    old_new = (results.get("memory") or {}).get("old_new_glmm")
    if old_new:
        sentences.append(
            "Every answer of the test phase was also modelled by the person's status (met in a "
            "real photograph, met in an AI headshot, or a foil never shown, the reference) with a "
            f"logistic mixed model ({old_new['formula']}); its AI-versus-real contrast compares "
            "the people met in the two conditions, and a joint Wald χ² tests status overall."
        )
    mixed = []
    if "lmm" in methods:
        mixed.append(
            "linear mixed models of single ratings (REML, Satterthwaite degrees of freedom)"
        )
    if "glmm" in methods:
        mixed.append("logistic mixed models of single answers (Laplace approximation)")
    if "clmm" in methods:
        mixed.append(
            "cumulative-link (ordinal, logit) mixed models of single ratings with flexible "
            "thresholds (Laplace approximation, as R's ordinal::clmm; Christensen, 2019), "
            "because ratings are ordinal (Liddell & Kruschke, 2018)"
        )
    if mixed:
        sentences.append(
            "Mixed models with crossed random effects of participants and identities "
            "(Judd, Westfall & Kenny, 2012) were fitted as lme4 and ordinal fit them: "
            + _join(mixed)
            + "."
        )
    if (results.get("plan") or {}).get("rating_model") == "clmm" and "clmm" in methods:
        sentences.append(
            "As preregistered, the ordinal mixed model was the primary test of each rating "
            "outcome; the paired t-tests on participant means are reported beside it."
        )
    if "tost" in methods:
        sentences.append(
            "Equivalence was tested with two one-sided tests (TOST) against the "
            "preregistered bounds; “no reliable difference” is claimed only where "
            "the TOST is significant."
        )
    rscales = {t.get("bf_rscale") for t in tests if t.get("log_bf10") is not None}
    if rscales:
        scale = ", ".join(f"{r:.3g}" for r in sorted(r for r in rscales if r is not None))
        sentences.append(
            "Beside each participant-level t-test, a JZS Bayes factor (Rouder et al., 2009; "
            f"Cauchy prior on the standardised difference with scale r = {scale}) says how many "
            "times more likely the data are under no difference than under a difference, or "
            "the reverse (between 1/3 and 3: inconclusive); it depends on that prior and does "
            "not change the verdicts."
        )
    correction = CORRECTION_NAMES.get(results.get("correction"), "p").replace("-adjusted p", "")
    families = results.get("families") or []
    sentences.append(
        f"p-values were corrected with the {correction} method within each family of tests "
        f"({_count(len(families), 'family', 'families')}), at α = {results.get('alpha', 0.05):g}; "
        "a difference is claimed only where the corrected test is significant."
    )
    return " ".join(sentences)


def _flow_sentences(design: dict[str, Any], blocks: list[dict[str, Any]]) -> list[str]:
    """The block order, as it was assigned, and the pages between the blocks, as they ran."""
    order = design.get("block_order", "fixed")
    last = [b["name"] for b in blocks if b.get("name") in (design.get("blocks_last") or [])]
    first = [b["name"] for b in blocks if b.get("name") not in last]
    kept = (
        f", {_join(last)} always after the others"
        + (
            f" (their order also {'randomised' if order == 'random' else 'counterbalanced'})"
            if len(last) > 1
            else ""
        )
        if last and first
        else ""
    )
    sentences = []
    if order == "random":
        sentences.append(
            "The order of the blocks was randomised for each participant from a stored seed"
            f"{kept}; each participant's order is recorded with the data."
        )
    elif order == "counterbalanced":
        sizes = [n for n in (len(first), len(last)) if n]
        rows = math.lcm(*(n if n % 2 == 0 else 2 * n for n in sizes)) if sizes else 1
        sentences.append(
            "The order of the blocks was counterbalanced across participants with a balanced "
            f"Latin square (Williams design; {_count(rows, 'row')}, each block in each position "
            "equally often and each block following every other equally often), rows assigned "
            f"in order of arrival{kept}; each participant's order and row are recorded with the "
            "data."
        )
    if order != "fixed" and any(
        (b.get("settings") or {}).get("practice") is None
        for b in blocks
        if b.get("task") not in ("learn", "recognise")
    ):
        sentences.append("The block that ran first opened with a practice trial (not analysed).")
    introduced = [
        b["name"] for b in blocks if ((b.get("settings") or {}).get("instructions") or "").strip()
    ]
    if len(introduced) == len(blocks):
        sentences.append("Each block began with its own instructions page.")
    elif introduced:
        plural = "s" if len(introduced) > 1 else ""
        sentences.append(
            f"The {_join(introduced)} block{plural} began with {'their' if plural else 'its'} own "
            "instructions page."
        )
    pauses = [
        f"every {b['settings']['break_every']} trials of the {b['name']} block"
        for b in blocks
        if (b.get("settings") or {}).get("break_every")
    ]
    between = "between blocks" if design.get("block_breaks") and len(blocks) > 1 else ""
    if between or pauses:
        where = _join([w for w in [between, *pauses] if w])
        sentences.append(
            f"Participants were offered a self-paced break {where}, with a progress message."
        )
    return sentences


def methods_paragraph(
    design: dict[str, Any],
    results: dict[str, Any],
    sample: dict[str, Any],
    software: dict[str, str],
) -> str:
    """Return the methods paragraph, ready to paste.

    `design` holds ``n_identities``, ``n_consented`` (identities with image-use consent
    recorded; all when absent), ``n_lists``, ``assign_by``, ``blocks`` (name, task and
    settings with defaults filled in) and ``preregistration`` (``frozen_at`` text and
    ``sha256``, or None); `sample` is what `survey.findings.service` stores (recruited,
    withdrawn, excluded, reasons, included, by_list, by_device, sources); `software` maps
    package names to versions.
    """
    parts = [_sample_sentence(sample)]
    n_ids = design.get("n_identities") or results.get("n_identities", 0)
    blocks = design.get("blocks") or []
    tasks = [b.get("task") for b in blocks]
    probes = (
        ", with different in-person photographs as recognition probes"
        if {"match", "recognise"} & set(tasks)
        else ""
    )
    # Consent is claimed only as far as the study recorded it (an identity added without it
    # shows "consent: not recorded" in the gallery).
    consented = design.get("n_consented", n_ids)
    if consented >= n_ids:
        consent = " (people who consented to the use of their images)"
    elif consented:
        consent = f" (image-use consent recorded for {consented} of them)"
    else:
        consent = ""
    parts.append(
        f"The stimuli showed {_count(n_ids, 'identity', 'identities')}{consent}, each in a real "
        f"photographic headshot and an AI-generated headshot of the same person{probes}."
    )
    if blocks:
        order = design.get("block_order", "fixed")
        listed = "in this order" if order == "fixed" else "listed here"
        parts.append(
            f"Participants completed {_count(len(blocks), 'block')} {listed}: "
            + "; ".join(
                f"({i}) {_block_phrase(b, i == 1 and order == 'fixed', n_ids)}"
                for i, b in enumerate(blocks, 1)
            )
            + "."
        )
        parts += _flow_sentences(design, blocks)
    lists = design.get("n_lists", 2)
    assign = "started" if design.get("assign_by", "started") == "started" else "completed"
    kinds = [
        word
        for task, word in (("match", "recognition"), ("rate", "rating"), ("detect", "detection"))
        if task in tasks
    ]
    if "recognise" in tasks:
        parts.append(
            f"For the memory test, the {_count(lists, 'counterbalancing list')} rotated each "
            "identity's role so that, across lists, every identity was met in its real headshot, "
            "met in its AI headshot and left unstudied (a foil) equally often (the foil role "
            "twice as often as each studied one, so that as many foils as people met were tested)."
        )
    if kinds:
        parts.append(
            f"Identities were split into {_count(lists, 'counterbalancing list')} (a Latin square "
            f"over the real and AI conditions), so that in the {_join(kinds)} "
            f"block{'s' if sum(t in ('match', 'rate', 'detect') for t in tasks) > 1 else ''}"
            " each participant saw each "
            "identity in one condition only; each new participant was assigned the list with the "
            f"fewest {assign} participants, and trial order was shuffled per participant from a "
            "stored seed."
        )
    else:
        parts.append(
            "Every participant saw the real and the AI headshot of each identity side "
            "by side, so no counterbalancing lists were needed; trial order and sides "
            "were shuffled per participant from a stored seed."
        )
    parts.append(_rules_sentence(results))
    prereg = design.get("preregistration")
    if prereg:
        parts.append(
            f"The analysis plan was preregistered on {prereg.get('frozen_at')} "
            f"(SHA-256 {str(prereg.get('sha256', ''))[:16]}…); tests it did not name are "
            "reported as exploratory."
        )
    else:
        parts.append("No analysis plan was preregistered, so every test is exploratory.")
    parts.append(_tests_sentence(results))
    if software:
        parts.append(
            "Analyses ran in "
            + _join([f"{name} {version}" for name, version in software.items()])
            + "."
        )
    return " ".join(parts)
