"""Block settings: what a block of each task may set, the defaults, and how settings are checked."""

from __future__ import annotations

import copy
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from analysis.vocabulary import FIXED_MEASURES
from survey.i18n import N_

TASKS = ("match", "rate", "choose", "detect", "learn", "recognise")
# The memory paradigm: study phase, then (after any filler blocks) the test phase.
MEMORY_TASKS = ("learn", "recognise")
# Tasks that take the common settings (practice, attention checks, a cap on identities).
COMMON_TASKS = tuple(t for t in TASKS if t not in MEMORY_TASKS)
CONDITIONS = ("real", "ai")
# Tasks that show one version of an identity, so the identity's condition must hold across them.
CONDITION_TASKS = ("match", "rate", "detect")
PRESENTATIONS = ("side_by_side", "sequential")
# A scale's key cannot be a measure with a fixed meaning (one list, shared with the analysis).
RESERVED_MEASURES = FIXED_MEASURES
EXPOSURE_MS_RANGE = (200, 10000)
# A sequential match's phases around the headshot, in ms (0: the phase is left out).
PHASE_MS_MAX = 5000
PHASE_SETTINGS = ("fixation_ms", "mask_ms", "isi_ms")
PHASE_WORDS = {"fixation_ms": "fixation cross", "mask_ms": "mask", "isi_ms": "blank interval"}
MIN_PER_CONDITION = 2
# Response.measure holds 32 characters.
MEASURE_KEY_MAX = 32
MAX_SCALE_POINTS = 101
# Scale values are stored as text (an attention check's instructed answer in 16 characters).
SCALE_LIMIT = 1000
DEFAULT_SCALE = {
    "key": "trust",
    # Defaults a participant sees in their own language (catalog entries; see survey/i18n.py).
    "question": N_("How much do you trust this person?"),
    "low_anchor": N_("Not at all"),
    "high_anchor": N_("Completely"),
    "min": 1,
    "max": 7,
}
DEFAULT_CHOOSE_QUESTION = N_("Which photo do you trust more?")
DEFAULT_RECOGNISE_QUESTION = N_("Have you met this person before?")
# A label longer than this would not fit under a phone's headshot; names are short.
LABEL_MAX = 120
# Where a learn block's label puts each person's fictional name; a label without it (a role
# such as "Your new colleague") is shown as written and names no one.
NAME_PLACEHOLDER = "{name}"
# Recognise trials with name recall offer this many names, one of them right for a target.
NAME_CHOICES = 4
# The memory paradigm's cells per list: studied real, studied ai and (twice as many) foils.
MEMORY_CELLS = 4
# The delay before a memory test phase: a timed distractor (seconds of sums) and a second
# session (hours until the return link opens the test phase), each 0 for none.
DISTRACTOR_S_MAX = 600
DELAY_HOURS_MAX = 30 * 24

# The block flow (survey/flow.py), for every task: the instructions page shown before the
# block (Markdown; empty: no page) and a break after every so many of its trials (None: none).
INSTRUCTIONS_MAX = 5000
BREAK_EVERY_RANGE = (2, 1000)
FLOW_DEFAULTS: dict[str, Any] = {"instructions": "", "break_every": None}
_COMMON_DEFAULTS: dict[str, Any] = {"attention_checks": [], "practice": None, "n_identities": None}
_TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "match": {
        "presentation": "side_by_side",
        "exposure_ms": 1500,
        **dict.fromkeys(PHASE_SETTINGS, 0),
        "confidence": True,
    },
    "rate": {"scales": [DEFAULT_SCALE]},
    "choose": {"question": DEFAULT_CHOOSE_QUESTION},
    "detect": {"confidence": True},
    "learn": {"exposure_ms": 3000, "label": "", "orienting_question": ""},
    "recognise": {
        "question": DEFAULT_RECOGNISE_QUESTION,
        "confidence": True,
        "name_recall": False,
        "delay_hours": 0,
        "distractor_s": 0,
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


def _check_phases(out: dict[str, Any]) -> None:
    """Reject a fixation, mask or blank interval outside its rule's range (SETTING_RULES), or one
    set on a side-by-side match (nothing is shown one after the other there)."""
    for name in PHASE_SETTINGS:
        value, rule = out[name], SETTING_RULES[name]
        if not (is_int(value) and rule.low <= value <= rule.high):  # type: ignore[operator]
            raise ValueError(
                f"{name} (the {PHASE_WORDS[name]}) must be a whole number of milliseconds from"
                f" {rule.low} to {rule.high}, got {value!r}"
            )
    phase = _phase_without_sequence(out)
    if phase:
        raise ValueError(
            f"{phase} (the {PHASE_WORDS[phase]}) needs the sequential presentation:"
            " side by side, both photos show at once"
        )


def _phase_without_sequence(values: Mapping[str, Any]) -> str | None:
    """Return the first phase set (a positive whole number) on a match that is not sequential."""
    if values.get("presentation") == "sequential":
        return None
    for name in PHASE_SETTINGS:
        value = values.get(name)
        if is_int(value) and value > 0:
            return name
    return None


def validate_block_settings(task: str, settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return a normalised copy of a block's settings with defaults; ValueError names a bad key."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    settings = {} if settings is None else settings
    if not isinstance(settings, Mapping):
        raise ValueError(f"settings must be a mapping, got {settings!r}")
    common = {} if task in MEMORY_TASKS else _COMMON_DEFAULTS
    defaults = {**common, **_TASK_DEFAULTS[task], **FLOW_DEFAULTS}
    unknown = sorted(str(k) for k in settings if k not in defaults)
    if unknown:
        raise ValueError(
            f"unknown setting {unknown[0]!r} for a {task} block (known: {', '.join(defaults)})"
        )
    out = copy.deepcopy({**defaults, **settings})
    _check_flow(out)
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
        _check_phases(out)
    if task in ("match", "detect"):
        _check_bool("confidence", out["confidence"])
    if task == "rate":
        out["scales"] = _check_scales(out["scales"])
    if task == "choose":
        _check_text("question", out["question"])
    return out


def stored_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Return valid settings as a block stores them: the block flow's at their defaults (no
    instructions page, no break) are left out, as blocks made before them have none."""
    return {k: v for k, v in settings.items() if FLOW_DEFAULTS.get(k, ...) != v}


def _check_flow(out: dict[str, Any]) -> None:
    """Check the block flow's settings: instructions text, and a break every N trials."""
    _check_text("instructions", out["instructions"], required=False)
    if len(out["instructions"]) > INSTRUCTIONS_MAX:
        raise ValueError(
            f"instructions must have at most {INSTRUCTIONS_MAX} characters,"
            f" got {len(out['instructions'])}"
        )
    every, (low, high) = out["break_every"], BREAK_EVERY_RANGE
    if every is not None and not (is_int(every) and low <= every <= high):
        raise ValueError(
            f"break_every must be an integer from {low} to {high}, or None for no break,"
            f" got {every!r}"
        )


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
        if label.count(NAME_PLACEHOLDER) > 1 or len(label) > LABEL_MAX:
            raise ValueError(
                "label may hold {name} at most once, where the person's name goes, and at most"
                f" {LABEL_MAX} characters, got {out['label']!r}"
            )
        out["label"] = label
        _check_text("orienting_question", out["orienting_question"], required=False)
        out["orienting_question"] = out["orienting_question"].strip()
    else:
        _check_text("question", out["question"])
        _check_bool("confidence", out["confidence"])
        _check_bool("name_recall", out["name_recall"])
        for name, high in (("distractor_s", DISTRACTOR_S_MAX), ("delay_hours", DELAY_HOURS_MAX)):
            if not (is_int(out[name]) and 0 <= out[name] <= high):
                raise ValueError(f"{name} must be an integer from 0 to {high}, got {out[name]!r}")
    return out


def names_people(label: str | None) -> bool:
    """Tell whether a learn block's label gives each person a fictional name."""
    return label is not None and NAME_PLACEHOLDER in label


def min_identities(task: str) -> int:
    """Return how many identities a block of this task needs at least."""
    if task in MEMORY_TASKS:
        return MIN_PER_CONDITION * MEMORY_CELLS
    per_condition = len(CONDITIONS) if task in CONDITION_TASKS else 1
    return MIN_PER_CONDITION * per_condition


def block_length(task: str, settings: Mapping[str, Any], n_identities: int) -> int:
    """Return how many trials a block with valid settings shows of a study's identities (its
    practice trial not counted): the identities it shows and its attention checks; a learn
    block shows the half studied in a list."""
    if task == "learn":
        return n_identities // 2
    if task == "recognise":
        return n_identities
    cap = settings.get("n_identities")
    shown = n_identities if cap is None else min(cap, n_identities)
    return shown + attention_check_count(settings.get("attention_checks"))


def attention_check_count(checks: Any) -> int:
    """Return how many attention checks a block's setting asks for (a count or a list of
    positions)."""
    if not checks:
        return 0
    return checks if is_int(checks) else len(checks)


# --- checks in the researcher's words ------------------------------------------------------
#
# `validate_block_settings` above checks a definition as a program writes it and names the
# setting keys. The workspace shows the researcher other words: each setting has a rule with
# the label the forms use, and `setting_errors` reports every broken rule at once, keyed by
# setting (scale rows by "scales-<row>-<field>", as the form names them). A new setting plugs
# in with a rule in SETTING_RULES (and its default in _TASK_DEFAULTS or _COMMON_DEFAULTS).


@dataclass(frozen=True)
class SettingRule:
    """How the workspace names a setting and what it accepts.

    kind: "int" (low..high, in `unit`), "bool", "choice" (one of `choices`), "text" (non-empty),
    or a name of a checker in _CHECKERS for settings with structure of their own.
    """

    label: str
    tasks: tuple[str, ...]
    kind: str
    low: int | None = None
    high: int | None = None
    unit: str = ""
    choices: tuple[Any, ...] = ()
    hint: str = ""


SETTING_RULES: dict[str, SettingRule] = {
    "practice": SettingRule(
        "Practice trial",
        COMMON_TASKS,
        "choice",
        choices=(None, True, False),
        hint="choose when this block runs first, yes or no",
    ),
    "attention_checks": SettingRule("Attention checks", COMMON_TASKS, "attention"),
    "n_identities": SettingRule("Identities shown", COMMON_TASKS, "cap"),
    "presentation": SettingRule(
        "Presentation",
        ("match",),
        "choice",
        choices=PRESENTATIONS,
        hint="choose side by side or sequential",
    ),
    # A learn block may leave it empty: each headshot stays until the participant continues.
    "exposure_ms": SettingRule(
        "Exposure",
        ("match", "learn"),
        "exposure",
        low=EXPOSURE_MS_RANGE[0],
        high=EXPOSURE_MS_RANGE[1],
        unit="ms",
    ),
    **{
        name: SettingRule(label, ("match",), "int", low=0, high=PHASE_MS_MAX, unit="ms")
        for name, label in (
            ("fixation_ms", "Fixation cross"),
            ("mask_ms", "Mask"),
            ("isi_ms", "Blank before the probe"),
        )
    },
    "confidence": SettingRule("Confidence question", ("match", "detect", "recognise"), "bool"),
    "question": SettingRule("Question", ("choose", "recognise"), "text"),
    "scales": SettingRule("Rating scales", ("rate",), "scales"),
    "label": SettingRule("Name label", ("learn",), "label", high=LABEL_MAX),
    "orienting_question": SettingRule("Orienting question", ("learn",), "optional_text"),
    "name_recall": SettingRule("Name recall", ("recognise",), "bool"),
    "distractor_s": SettingRule(
        "Distractor before the test", ("recognise",), "int", low=0, high=DISTRACTOR_S_MAX, unit="s"
    ),
    "delay_hours": SettingRule(
        "Second session after", ("recognise",), "int", low=0, high=DELAY_HOURS_MAX, unit="hours"
    ),
    "instructions": SettingRule("Block instructions", TASKS, "markdown", high=INSTRUCTIONS_MAX),
    "break_every": SettingRule(
        "Break every",
        TASKS,
        "every",
        low=BREAK_EVERY_RANGE[0],
        high=BREAK_EVERY_RANGE[1],
        unit="trials",
    ),
}


def _number(value: Any) -> str:
    """Write a number with thousands separators (10,000), anything else as given."""
    return f"{value:,}" if is_int(value) else str(value)


def _and(words: tuple[str, ...]) -> str:
    """Join words as a sentence lists them: a, b and c."""
    return " and ".join(words) if len(words) < 3 else f"{', '.join(words[:-1])} and {words[-1]}"


def _wrote(value: Any) -> str:
    """Say what the researcher wrote, for the end of a message."""
    if value is None or value == "":
        return "you left it empty"
    shown = _number(value) if is_int(value) else repr(value) if isinstance(value, str) else value
    return f"you wrote {shown}"


def _check_int_rule(rule: SettingRule, value: Any) -> list[str]:
    """An integer within the rule's range."""
    low, high, unit = _number(rule.low), _number(rule.high), f" {rule.unit}" if rule.unit else ""
    if not is_int(value) or not (rule.low <= value <= rule.high):  # type: ignore[operator]
        return [
            f"{rule.label} must be a whole number between {low} and {high}{unit}; {_wrote(value)}."
        ]
    return []


def _check_exposure_rule(rule: SettingRule, value: Any, task: str) -> list[str]:
    """An integer within the rule's range; a learn block may also leave it empty (self-paced)."""
    if value is None and task == "learn":
        return []
    errors = _check_int_rule(rule, value)
    if errors and task == "learn":
        errors[0] = errors[0].replace(";", ", or empty to let participants continue when ready;", 1)
    return errors


def _check_label_rule(rule: SettingRule, value: Any, task: str) -> list[str]:
    """Empty, or a short text: a role as written, or with {name} once where the name goes."""
    if not isinstance(value, str):
        return [
            f"{rule.label}: write a text such as Dr {{name}}, or leave it empty; {_wrote(value)}."
        ]
    label = value.strip()
    if not label:
        return []
    errors = []
    if label.count(NAME_PLACEHOLDER) > 1:
        errors.append(
            f"{rule.label}: write {{name}} at most once, where the person's name goes (for "
            f"example Your new colleague Dr {{name}}), or a role alone such as Your new "
            f"colleague; {_wrote(label)}."
        )
    if len(label) > LABEL_MAX:
        errors.append(
            f"{rule.label}: at most {LABEL_MAX} characters, so that it fits under the photo on a "
            f"phone; it has {len(label)}."
        )
    return errors


def _check_optional_text_rule(rule: SettingRule, value: Any, task: str) -> list[str]:
    """Text, which may be empty."""
    if isinstance(value, str):
        return []
    return [f"{rule.label}: write a question, or leave it empty for none; {_wrote(value)}."]


def _check_markdown_rule(rule: SettingRule, value: Any, task: str) -> list[str]:
    """Text, which may be empty, of at most the rule's length."""
    if not isinstance(value, str):
        return [f"{rule.label}: write a text, or leave it empty for none; {_wrote(value)}."]
    if len(value) > rule.high:  # type: ignore[operator]
        return [f"{rule.label}: at most {_number(rule.high)} characters; this has {len(value):,}."]
    return []


def _check_every_rule(rule: SettingRule, value: Any, task: str) -> list[str]:
    """Empty (no break), or a whole number of trials within the rule's range."""
    if value is None:
        return []
    if not is_int(value) or not (rule.low <= value <= rule.high):  # type: ignore[operator]
        return [
            f"{rule.label} must be a whole number of trials between {_number(rule.low)} and "
            f"{_number(rule.high)}, or empty for no break within the block; {_wrote(value)}."
        ]
    return []


# Bounds that hold before any identity is uploaded (the fit to the block is checked then).
MAX_ATTENTION_CHECKS = 200
MAX_ATTENTION_POSITION = 10_000


def _check_attention_rule(rule: SettingRule, value: Any, task: str) -> list[str]:
    """A count of 0 or more, or distinct positions from 1."""
    if is_int(value):
        if value < 0:
            return [f"{rule.label}: the number of checks cannot be negative; {_wrote(value)}."]
        if value > MAX_ATTENTION_CHECKS:
            return [
                f"{rule.label}: at most {MAX_ATTENTION_CHECKS:,} checks in a block; "
                f"{_wrote(value)}."
            ]
        return []
    if not isinstance(value, (list, tuple)) or not all(is_int(p) for p in value):
        return [
            f"{rule.label}: write positions such as 3, 12 or a count such as 2 checks; "
            f"{_wrote(value)}."
        ]
    errors = [
        f"{rule.label}: positions start at 1 (the first trial after the practice); you wrote {p}."
        for p in sorted(set(value))
        if p < 1
    ]
    errors += [
        f"{rule.label}: positions go up to {MAX_ATTENTION_POSITION:,}; you wrote {p}."
        for p in sorted(set(value))
        if p > MAX_ATTENTION_POSITION
    ]
    if len(value) > MAX_ATTENTION_CHECKS:
        errors.append(f"{rule.label}: at most {MAX_ATTENTION_CHECKS:,} checks in a block.")
    errors += [
        f"{rule.label}: position {p} is listed more than once."
        for p, n in sorted(Counter(value).items())
        if n > 1
    ]
    return errors


def _check_cap_rule(rule: SettingRule, value: Any, task: str) -> list[str]:
    """Empty, or at least the identities the task needs."""
    if value is None:
        return []
    least = min_identities(task)
    why = (
        f" ({MIN_PER_CONDITION} shown real and {MIN_PER_CONDITION} shown AI)"
        if task in CONDITION_TASKS
        else ""
    )
    if not is_int(value) or value < least:
        return [
            f"{rule.label} must be at least {least}{why}, or empty to show every identity; "
            f"{_wrote(value)}."
        ]
    return []


def _scale_errors(index: int, scale: Any) -> dict[str, list[str]]:
    """Every problem of one rating scale (row `index`), keyed by its form field."""
    row = f"scale {index + 1}"
    errors: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        errors.setdefault(f"scales-{index}-{field}", []).append(message)

    if not isinstance(scale, Mapping):
        add("key", f"{row.capitalize()} is not a rating scale.")
        return errors
    out = {"low_anchor": "", "high_anchor": "", "min": 1, "max": 7, **scale}
    key = out.get("key")
    if not isinstance(key, str) or not key:
        add("key", f"Give {row} a key, a short name such as trust for its column in trials.csv.")
    elif not _SNAKE_CASE.match(key) or len(key) > MEASURE_KEY_MAX:
        add(
            "key",
            f"The key of {row} must start with a lower-case letter and use only lower-case "
            f"letters, digits and _ (at most {MEASURE_KEY_MAX} characters), e.g. trust; "
            f"{_wrote(key)}.",
        )
    elif key in RESERVED_MEASURES:
        add(
            "key",
            f"The key of {row} cannot be {key!r}: the names {', '.join(RESERVED_MEASURES)} are "
            "taken by the tasks' own answers.",
        )
    question = out.get("question")
    if not isinstance(question, str) or not question.strip():
        add("question", f"Write the question of {row}, the one participants answer.")
    for bound, label in (("min", "lowest value"), ("max", "highest value")):
        value = out[bound]
        if not (is_int(value) and -SCALE_LIMIT <= value <= SCALE_LIMIT):
            add(
                bound,
                f"The {label} of {row} must be a whole number between {_number(-SCALE_LIMIT)} "
                f"and {_number(SCALE_LIMIT)}; {_wrote(value)}.",
            )
    low, high = out["min"], out["max"]
    bounds_ok = not {f"scales-{index}-min", f"scales-{index}-max"} & errors.keys()
    if is_int(low) and is_int(high) and bounds_ok:
        if high <= low:
            add(
                "max",
                f"The highest value of {row} must be above its lowest ({low}); {_wrote(high)}.",
            )
        elif high - low >= MAX_SCALE_POINTS:
            add(
                "max",
                f"{row.capitalize()} may have at most {MAX_SCALE_POINTS} points; from {low} "
                f"to {high} it has {high - low + 1}.",
            )
    return errors


def _check_scales_rule(rule: SettingRule, value: Any, task: str) -> dict[str, list[str]]:
    """At least one scale; each valid; keys unique."""
    if not isinstance(value, (list, tuple)) or not value:
        return {"scales": ["Give at least one rating scale (a key and a question)."]}
    errors: dict[str, list[str]] = {}
    for index, scale in enumerate(value):
        for field, messages in _scale_errors(index, scale).items():
            errors.setdefault(field, []).extend(messages)
    seen: dict[str, int] = {}
    for index, scale in enumerate(value):
        key = scale.get("key") if isinstance(scale, Mapping) else None
        if not isinstance(key, str) or not key:
            continue
        if key in seen:
            errors.setdefault(f"scales-{index}-key", []).append(
                f"Scale {index + 1} uses the key {key!r} like scale {seen[key] + 1}: "
                "each scale needs its own key."
            )
        else:
            seen[key] = index
    return errors


def setting_errors(task: str, settings: Mapping[str, Any]) -> dict[str, list[str]]:
    """Return every problem of a block's settings in the researcher's words, keyed by setting.

    Empty when `validate_block_settings` accepts the settings (missing ones take defaults).
    """
    if task not in TASKS:
        return {"task": [f"Choose one of the tasks {', '.join(TASKS)}; {_wrote(task)}."]}
    if not isinstance(settings, Mapping):
        return {"settings": [f"The block's settings cannot be read; {_wrote(settings)}."]}
    common = {} if task in MEMORY_TASKS else _COMMON_DEFAULTS
    values = {**common, **_TASK_DEFAULTS[task], **FLOW_DEFAULTS, **settings}
    errors: dict[str, list[str]] = {}
    for name, value in values.items():
        rule = SETTING_RULES.get(name)
        if rule is None:
            errors.setdefault(name, []).append(f"A {task} block has no setting called {name!r}.")
            continue
        if task not in rule.tasks:
            errors.setdefault(name, []).append(
                f"A {task} block has no {rule.label.lower()} setting (only "
                f"{_and(rule.tasks)} blocks have one)."
            )
            continue
        found: list[str] | dict[str, list[str]]
        if rule.kind == "int":
            found = _check_int_rule(rule, value)
        elif rule.kind == "bool":
            found = (
                []
                if isinstance(value, bool)
                else [f"{rule.label}: choose yes or no; {_wrote(value)}."]
            )
        elif rule.kind == "choice":
            found = (
                [] if value in rule.choices else [f"{rule.label}: {rule.hint}; {_wrote(value)}."]
            )
        elif rule.kind == "text":
            ok = isinstance(value, str) and value.strip()
            found = [] if ok else [f"Write the {rule.label.lower()} participants are asked."]
        else:
            found = _CHECKERS[rule.kind](rule, value, task)
        if isinstance(found, dict):
            for field, messages in found.items():
                errors.setdefault(field, []).extend(messages)
        elif found:
            errors.setdefault(name, []).extend(found)
    phase = _phase_without_sequence(values) if task == "match" else None
    if phase and phase not in errors and "presentation" not in errors:
        errors[phase] = [
            f"{SETTING_RULES[phase].label}: only a sequential presentation has one (side by side, "
            "both photos show at once); choose sequential, or set it to 0."
        ]
    return errors


_CHECKERS: dict[str, Any] = {
    "exposure": _check_exposure_rule,
    "label": _check_label_rule,
    "optional_text": _check_optional_text_rule,
    "markdown": _check_markdown_rule,
    "every": _check_every_rule,
    "attention": _check_attention_rule,
    "cap": _check_cap_rule,
    "scales": _check_scales_rule,
}


def plain_problems(task: str, settings: Any, error: ValueError) -> list[str]:
    """Say in the workspace's words why `validate_block_settings` refused a block's settings:
    the setting rules' messages, or the check's own where no rule knows the problem."""
    found = setting_errors(task, {} if settings is None else settings)
    return [m for messages in found.values() for m in messages] or [f"{error}."]


def fit_errors(
    task: str, settings: Mapping[str, Any], n_identities: int, n_lists: int
) -> dict[str, list[str]]:
    """Return the problems of valid block settings against the study's identities and lists.

    Checked when a block is saved, so that a block that cannot run is refused then rather than
    found on the overview. With no identities uploaded yet, what depends on them waits.
    """
    errors: dict[str, list[str]] = {}
    cap = settings.get("n_identities")
    if cap is not None and task in CONDITION_TASKS and cap % len(CONDITIONS):
        errors.setdefault("n_identities", []).append(
            f"Identities shown must be an even number, so that as many are shown real as AI; "
            f"you wrote {cap}."
        )
    if cap is not None and n_identities and cap > n_identities:
        errors.setdefault("n_identities", []).append(
            f"Identities shown is {cap}, but the study has only {n_identities} identities; "
            "lower it, or leave it empty to show every identity."
        )
    if task in CONDITION_TASKS and n_lists % len(CONDITIONS):
        errors.setdefault("task", []).append(
            f"The study has {n_lists} counterbalancing lists; match, rate and detect blocks need "
            f"a multiple of {len(CONDITIONS)} (each identity is shown real in half the lists and "
            "AI in the other half). Change the number of lists in the study's settings first."
        )
    if task in MEMORY_TASKS and n_lists % MEMORY_CELLS:
        errors.setdefault("task", []).append(
            f"The study has {n_lists} counterbalancing lists; learn and recognise blocks need the "
            "lists in fours (4, 8, 12…), so that "
            "every face is studied real, studied AI and a foil equally often. Change the number "
            "of lists in the study's settings first."
        )
    if not n_identities:
        return errors
    shown = n_identities if cap is None else min(cap, n_identities)
    checks = settings.get("attention_checks") or []
    every = settings.get("break_every")
    length = block_length(task, settings, n_identities)
    if is_int(every) and every >= length:
        errors.setdefault("break_every", []).append(
            f"Break every: a break after every {every} trials never comes in this block, which "
            f"has {length} trials; choose fewer, or leave it empty for no break within the block."
        )
    if is_int(checks) and checks > shown:
        errors.setdefault("attention_checks", []).append(
            f"Attention checks: {checks} checks are more than the {shown} identities this block "
            "shows."
        )
    elif not is_int(checks) and checks:
        length = shown + len(checks)
        past = [p for p in checks if p > length]
        if past:
            errors.setdefault("attention_checks", []).append(
                f"Attention checks: position {past[0]} is past the end of the block, which has "
                f"{length} trials ({shown} identities and {len(checks)} "
                f"{'check' if len(checks) == 1 else 'checks'})."
            )
    return errors
