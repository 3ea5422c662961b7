"""The analysis's vocabulary: measures, outcomes and default exclusion rules (stdlib only)."""

from __future__ import annotations

from dataclasses import dataclass

# Measures with a fixed meaning; any other measure key on a rate trial is a rating scale.
FIXED_MEASURES = (
    "same",
    "confidence",
    "choice",
    "source",
    "attention",
    "old",
    "name",
    "orienting",
    "seen",
)
DEFAULT_RATING_RANGE = (1, 7)
# The contract's exclusion rules when no plan names its own.
DEFAULT_RULES = {
    "incomplete": True,
    "attention": True,
    "min_median_rt_ms": 250.0,
    "straightlining": False,
}
# Response times outside [RT_FAST_MS, RT_SLOW_MS] are kept but flagged in trials.csv's rt_flag:
# faster than a person can see a photograph and answer, or longer than a trial takes without
# the participant leaving the page.
RT_FAST_MS = 50.0
RT_SLOW_MS = 600_000.0
RT_FLAGS = ("", "fast", "slow")
# trials.csv's columns on what a trial showed, where and when (after `simulated`): the side of
# a choose trial's real headshot, the public ids of the images shown (see stimuli.csv), and when
# the trial was first shown and answered (ISO 8601 UTC, milliseconds, Z). Never analysed and
# outside the data hash; empty when an export predates them.
TRIAL_DETAIL_COLUMNS = (
    "real_side",
    "image",
    "image_right",
    "probe_image",
    "shown_at",
    "answered_at",
)
REAL_SIDES = ("", "left", "right")


def rt_flag(rt_ms: float | None) -> str:
    """Return the rt_flag of a response time: "fast", "slow", or "" (plausible or missing)."""
    if rt_ms is None or rt_ms != rt_ms:  # None or NaN: nothing measured
        return ""
    if rt_ms < RT_FAST_MS:
        return "fast"
    if rt_ms > RT_SLOW_MS:
        return "slow"
    return ""


@dataclass(frozen=True)
class Outcome:
    """What an outcome measures and how it is tested."""

    name: str
    task: str
    kind: str  # "rating", "proportion", "sdt" or "share"
    paired: bool  # ai vs real within units; else one sample against `reference_value`
    reference_value: float = 0.0
    label: str = ""
    scale: tuple[int, int] | None = None


FIXED_OUTCOMES = {
    "recognition_accuracy": Outcome(
        "recognition_accuracy", "match", "proportion", True, label="recognition accuracy"
    ),
    "d_prime": Outcome("d_prime", "match", "sdt", True, label="recognition sensitivity (d')"),
    "criterion": Outcome("criterion", "match", "sdt", True, label="response criterion (c)"),
    "choice_real": Outcome(
        "choice_real",
        "choose",
        "share",
        False,
        0.5,
        label="share of choices for the real photograph",
    ),
    "detection_accuracy": Outcome(
        "detection_accuracy", "detect", "proportion", False, 0.5, label="AI-detection accuracy"
    ),
    "detection_d_prime": Outcome(
        "detection_d_prime", "detect", "sdt", False, 0.0, label="AI-detection sensitivity (d')"
    ),
    # The memory test (learn then recognise): hits by the condition a person was studied in.
    "memory_hit_rate": Outcome(
        "memory_hit_rate", "recognise", "proportion", True, label="memory hit rate"
    ),
    "memory_d_prime": Outcome(
        "memory_d_prime", "recognise", "sdt", True, label="memory sensitivity (d')"
    ),
    "memory_criterion": Outcome(
        "memory_criterion", "recognise", "sdt", True, label="memory response criterion (c)"
    ),
}
MEMORY_OUTCOMES = ("memory_hit_rate", "memory_d_prime", "memory_criterion")


def rating_outcome(key: str, scale_ranges: dict | None = None) -> Outcome:
    """The Outcome of a rating scale such as ``trust``."""
    scale = tuple((scale_ranges or {}).get(key, DEFAULT_RATING_RANGE))
    label = "trust" if key == "trust" else f"ratings of {key.replace('_', ' ')}"
    return Outcome(key, "rate", "rating", True, label=label, scale=scale)


# The names of the families of tests corrected together (`analysis.report.FAMILIES`) for a
# reader; the keys stay the contract's identifiers.
FAMILY_LABELS = {
    "primary": "Primary outcomes",
    "secondary": "Secondary outcomes",
    "participant_wilcoxon": "Wilcoxon tests, participants",
    "identity_t": "t-tests, identities",
    "identity_wilcoxon": "Wilcoxon tests, identities",
    "equivalence": "Equivalence tests (TOST)",
    "pooled_binomial": "Binomial tests, all trials pooled",
    "mixed": "Mixed models",
    "participant_t": "Paired t-tests, participants",
}
