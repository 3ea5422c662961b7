"""Block settings: what a block of each task may set, the defaults, and how settings are checked.

`validate_block_settings` fills the defaults and rejects anything else:

- every task: ``attention_checks``: 1-based positions within the block (the practice trial not
  counted) or a count of checks spread evenly (default none); ``practice``: true/false, or
  None (the default) for "a practice trial when the block runs first"; ``n_identities``: a cap
  on the identities the block shows (None, the default, shows all; at least 2 per condition,
  split evenly between the conditions; the subset is drawn from the participant's seed).
- match: ``presentation`` "side_by_side" (default) or "sequential"; ``exposure_ms``, how long the
  headshot shows when sequential, 200-10000 (default 1500); ``confidence``, ask 1-5 (default true).
- rate: ``scales``, a list of {key, question, low_anchor, high_anchor, min, max}; key a
  snake_case name that is not a reserved measure (same, confidence, choice, source, attention),
  min 1 and max 7 by default. Default: one "trust" scale.
- choose: ``question`` (default "Which photo do you trust more?"); the answer's measure is
  ``choice``.
- detect: ``confidence``, ask 1-5 (default true).

The learn-then-recognise (memory) paradigm is two blocks, a ``learn`` block (study phase) and a
``recognise`` block (test phase) after it; any blocks placed between them are the filler. They
take none of the common settings (no practice, attention checks or cap: every identity is studied
or a foil, by list):

- learn: ``exposure_ms``, how long each headshot shows, 200-10000, or None for self-paced
  (default 3000); ``label``, a text shown under the headshot with ``{name}`` standing for a
  fictional name given to the identity (e.g. "Your new colleague Dr {name}"; default "", no
  label); ``orienting_question``, asked of each headshot on a 1-5 scale (default "", none: the
  participant continues when ready or when the time is up).
- recognise: ``question`` (default "Have you met this person before?"), answered yes (1) or no
  (0) as the measure ``old``; ``confidence``, ask 1-5 (default true); ``name_recall``, after a
  yes, choose the person's name from four (default false; needs the learn block's label).
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

TASKS = ("match", "rate", "choose", "detect", "learn", "recognise")
# The memory paradigm: study phase, then (after any filler blocks) the test phase.
MEMORY_TASKS = ("learn", "recognise")
CONDITIONS = ("real", "ai")
# Tasks that show one version of an identity, so the identity's condition must hold across them.
CONDITION_TASKS = ("match", "rate", "detect")
PRESENTATIONS = ("side_by_side", "sequential")
RESERVED_MEASURES = (
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
EXPOSURE_MS_RANGE = (200, 10000)
MIN_PER_CONDITION = 2
# Response.measure holds 32 characters.
MEASURE_KEY_MAX = 32
MAX_SCALE_POINTS = 101
# Scale values are stored as text (an attention check's instructed answer in 16 characters).
SCALE_LIMIT = 1000
DEFAULT_SCALE = {
    "key": "trust",
    "question": "How much do you trust this person?",
    "low_anchor": "Not at all",
    "high_anchor": "Completely",
    "min": 1,
    "max": 7,
}
DEFAULT_CHOOSE_QUESTION = "Which photo do you trust more?"
DEFAULT_RECOGNISE_QUESTION = "Have you met this person before?"
# A label longer than this would not fit under a phone's headshot; names are short.
LABEL_MAX = 120
# Recognise trials with name recall offer this many names, one of them right for a target.
NAME_CHOICES = 4
# The memory paradigm's cells per list: studied real, studied ai and (twice as many) foils.
MEMORY_CELLS = 4

_COMMON_DEFAULTS: dict[str, Any] = {"attention_checks": [], "practice": None, "n_identities": None}
_TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "match": {"presentation": "side_by_side", "exposure_ms": 1500, "confidence": True},
    "rate": {"scales": [DEFAULT_SCALE]},
    "choose": {"question": DEFAULT_CHOOSE_QUESTION},
    "detect": {"confidence": True},
    "learn": {"exposure_ms": 3000, "label": "", "orienting_question": ""},
    "recognise": {
        "question": DEFAULT_RECOGNISE_QUESTION,
        "confidence": True,
        "name_recall": False,
    },
}
_SCALE_FIELDS = ("key", "question", "low_anchor", "high_anchor", "min", "max")
_SNAKE_CASE = re.compile(r"[a-z][a-z0-9_]*\Z")


def is_int(value: Any) -> bool:
    """Tell whether a value is an integer and not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def _check_bool(name: str, value: Any) -> None:
    """Reject a value that is not true or false."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")


def _check_text(name: str, value: Any, required: bool = True) -> None:
    """Reject a value that is not text (or empty text when required)."""
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValueError(f"{name} must be {'non-empty ' if required else ''}text, got {value!r}")


def _check_attention_checks(value: Any) -> Any:
    """Return attention positions sorted, or the count as given; reject anything else."""
    if is_int(value):
        if value < 0:
            raise ValueError(f"attention_checks must be a count of 0 or more, got {value!r}")
        return value
    if not isinstance(value, (list, tuple)) or not all(is_int(p) for p in value):
        raise ValueError(
            f"attention_checks must be a count or a list of 1-based positions, got {value!r}"
        )
    for position in value:
        if position < 1:
            raise ValueError(f"attention_checks positions start at 1, got {position!r}")
    repeated = sorted(p for p, n in Counter(value).items() if n > 1)
    if repeated:
        raise ValueError(f"attention_checks lists position {repeated[0]} more than once")
    return sorted(value)


def _check_scale(index: int, scale: Any) -> dict[str, Any]:
    """Return one rating scale with its defaults, or raise naming the bad field."""
    name = f"scales[{index}]"
    if not isinstance(scale, Mapping):
        raise ValueError(f"{name} must be a mapping of {', '.join(_SCALE_FIELDS)}, got {scale!r}")
    unknown = sorted(str(k) for k in scale if k not in _SCALE_FIELDS)
    if unknown:
        raise ValueError(f"{name} has an unknown field {unknown[0]!r}")
    out = {"low_anchor": "", "high_anchor": "", "min": 1, "max": 7, **scale}
    key = out.get("key")
    if not isinstance(key, str) or not _SNAKE_CASE.match(key) or len(key) > MEASURE_KEY_MAX:
        raise ValueError(
            f"{name}.key must be a snake_case name of at most {MEASURE_KEY_MAX} characters,"
            f" got {key!r}"
        )
    if key in RESERVED_MEASURES:
        raise ValueError(
            f"{name}.key {key!r} is reserved (reserved: {', '.join(RESERVED_MEASURES)})"
        )
    _check_text(f"{name}.question", out.get("question"))
    _check_text(f"{name}.low_anchor", out["low_anchor"], required=False)
    _check_text(f"{name}.high_anchor", out["high_anchor"], required=False)
    for bound in ("min", "max"):
        if not (is_int(out[bound]) and -SCALE_LIMIT <= out[bound] <= SCALE_LIMIT):
            raise ValueError(
                f"{name}.{bound} must be an integer from {-SCALE_LIMIT} to {SCALE_LIMIT},"
                f" got {out[bound]!r}"
            )
    if not out["min"] < out["max"] < out["min"] + MAX_SCALE_POINTS:
        raise ValueError(
            f"{name} must run from min to a larger max with at most {MAX_SCALE_POINTS} points,"
            f" got {out['min']!r}..{out['max']!r}"
        )
    return out


def _check_scales(value: Any) -> list[dict[str, Any]]:
    """Return the rating scales with their defaults; keys must be unique."""
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"scales must be a non-empty list of scales, got {value!r}")
    scales = [_check_scale(i, s) for i, s in enumerate(value)]
    repeated = sorted(k for k, n in Counter(s["key"] for s in scales).items() if n > 1)
    if repeated:
        raise ValueError(f"scales use the key {repeated[0]!r} more than once")
    return scales


def validate_block_settings(task: str, settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return a normalised copy of a block's settings with defaults; ValueError names a bad key."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    settings = {} if settings is None else settings
    if not isinstance(settings, Mapping):
        raise ValueError(f"settings must be a mapping, got {settings!r}")
    common = {} if task in MEMORY_TASKS else _COMMON_DEFAULTS
    defaults = {**common, **_TASK_DEFAULTS[task]}
    unknown = sorted(str(k) for k in settings if k not in defaults)
    if unknown:
        raise ValueError(
            f"unknown setting {unknown[0]!r} for a {task} block (known: {', '.join(defaults)})"
        )
    out = copy.deepcopy({**defaults, **settings})
    if task in MEMORY_TASKS:
        return _check_memory(task, out)
    out["attention_checks"] = _check_attention_checks(out["attention_checks"])
    if out["practice"] is not None:
        _check_bool("practice", out["practice"])
    cap, least = out["n_identities"], min_identities(task)
    if cap is not None and not (is_int(cap) and cap >= least):
        raise ValueError(f"n_identities must be an integer of at least {least}, got {cap!r}")
    if task == "match":
        if out["presentation"] not in PRESENTATIONS:
            raise ValueError(
                f"presentation must be one of {', '.join(PRESENTATIONS)},"
                f" got {out['presentation']!r}"
            )
        low, high = EXPOSURE_MS_RANGE
        if not (is_int(out["exposure_ms"]) and low <= out["exposure_ms"] <= high):
            raise ValueError(
                f"exposure_ms must be an integer from {low} to {high}, got {out['exposure_ms']!r}"
            )
    if task in ("match", "detect"):
        _check_bool("confidence", out["confidence"])
    if task == "rate":
        out["scales"] = _check_scales(out["scales"])
    if task == "choose":
        _check_text("question", out["question"])
    return out


def _check_memory(task: str, out: dict[str, Any]) -> dict[str, Any]:
    """Check the settings of a learn or recognise block (defaults already filled)."""
    if task == "learn":
        low, high = EXPOSURE_MS_RANGE
        exposure = out["exposure_ms"]
        if exposure is not None and not (is_int(exposure) and low <= exposure <= high):
            raise ValueError(
                f"exposure_ms must be an integer from {low} to {high}, or None for self-paced,"
                f" got {exposure!r}"
            )
        _check_text("label", out["label"], required=False)
        label = out["label"].strip()
        if label and (label.count("{name}") != 1 or len(label) > LABEL_MAX):
            raise ValueError(
                "label must hold {name} once, where the person's name goes, and at most"
                f" {LABEL_MAX} characters, got {out['label']!r}"
            )
        out["label"] = label
        _check_text("orienting_question", out["orienting_question"], required=False)
        out["orienting_question"] = out["orienting_question"].strip()
    else:
        _check_text("question", out["question"])
        _check_bool("confidence", out["confidence"])
        _check_bool("name_recall", out["name_recall"])
    return out


def min_identities(task: str) -> int:
    """Return how many identities a block of this task needs at least."""
    if task in MEMORY_TASKS:
        return MIN_PER_CONDITION * MEMORY_CELLS
    per_condition = len(CONDITIONS) if task in CONDITION_TASKS else 1
    return MIN_PER_CONDITION * per_condition


def attention_check_count(checks: Any) -> int:
    """Return how many attention checks a block's setting asks for (a count or a list of
    positions)."""
    if not checks:
        return 0
    return checks if is_int(checks) else len(checks)
