"""Schedules and counterbalancing: which identities a participant sees, in what condition and order.

Pure functions of their inputs (no Flask, no database, no global random state), so a stored
schedule can be rebuilt from the participant's seed and compared with `schedule_fingerprint`.

Lists. Identities are put in design order (gender, age band, code) and dealt in turn to the
columns of a Latin square over the conditions (real, ai): in list A the first, third, … are
shown real and the others ai, in list B the reverse. Dealing in descriptor order gives each
condition of a list a like mix of genders and age bands. `n_lists` must be a multiple of the
number of conditions; lists past the square's rows repeat them. A participant sees each identity
in one condition only, the same in every match, rate and detect block; choose blocks, which show
both headshots, always run after the others.

Block settings (`validate_block_settings` fills the defaults and rejects anything else):

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

Trials. Match: within each condition half the identities are shown with their own probe photo
(``is_match``) and half with another identity's probe (a foil); with an odd count the extra
trial is a match in one condition and a foil in the other (which one from the seed), so a block
with two odd conditions stays balanced. Foil probes are paired by a minimum-cost assignment:
fewest gender mismatches first, then fewest age-band mismatches, then fewest probes borrowed from
identities shown as matches in the block; each identity's probes serve as a foil at most once,
ties go by the seed. Choose: the real headshot is on the left in half the trials (an odd extra
from the seed). Practice and attention-check trials show an identity the block leaves out when
it has a cap, otherwise any identity, always in its condition for the list; a match practice or
check pairs the headshot with a foil probe. Instructed answers of attention checks: rate, a value
of the block's first scale as text ("2"); match "1" (same) or "0"; detect "real" or "ai";
choose "left" or "right".
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
import math
import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

TASKS = ("match", "rate", "choose", "detect")
CONDITIONS = ("real", "ai")
# Tasks that show one version of an identity, so the identity's condition must hold across them.
CONDITION_TASKS = ("match", "rate", "detect")
PRESENTATIONS = ("side_by_side", "sequential")
RESERVED_MEASURES = ("same", "confidence", "choice", "source", "attention")
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
ATTENTION_ANSWERS = {"match": ("1", "0"), "detect": CONDITIONS, "choose": ("left", "right")}

_COMMON_DEFAULTS: dict[str, Any] = {"attention_checks": [], "practice": None, "n_identities": None}
_TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "match": {"presentation": "side_by_side", "exposure_ms": 1500, "confidence": True},
    "rate": {"scales": [DEFAULT_SCALE]},
    "choose": {"question": DEFAULT_CHOOSE_QUESTION},
    "detect": {"confidence": True},
}
_SCALE_FIELDS = ("key", "question", "low_anchor", "high_anchor", "min", "max")
_SNAKE_CASE = re.compile(r"[a-z][a-z0-9_]*\Z")


@dataclass(frozen=True)
class IdentityInfo:
    """One identity as the schedule needs it: code, descriptors and image keys."""

    code: str
    gender: str = ""
    age_band: str = ""
    # Source ("real" or "ai") -> image key of that headshot.
    headshots: dict[str, str] = field(default_factory=dict, hash=False)
    probes: tuple[str, ...] = ()


@dataclass(frozen=True)
class BlockInfo:
    """One block as configured: its unique name, task and raw settings."""

    name: str
    task: str
    settings: dict[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class TrialSpec:
    """One scheduled trial: what is shown, where, and how it counts."""

    position: int
    block: str
    task: str
    # Code of the identity in the headshot (choose: of the pair).
    identity: str
    # Source of the headshot shown; None for choose.
    condition: str | None
    # Key of the headshot shown; for choose, the left one.
    image: str
    other_image: str | None = None
    left_source: str | None = None
    probe_image: str | None = None
    probe_identity: str | None = None
    is_match: bool | None = None
    is_practice: bool = False
    is_attention: bool = False
    attention_answer: str | None = None


class DesignError(ValueError):
    """The design cannot run; `problems` lists every reason as a sentence."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("The design cannot run: " + " ".join(self.problems))


# --- settings ---------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
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
    if _is_int(value):
        if value < 0:
            raise ValueError(f"attention_checks must be a count of 0 or more, got {value!r}")
        return value
    if not isinstance(value, (list, tuple)) or not all(_is_int(p) for p in value):
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
        if not (_is_int(out[bound]) and -SCALE_LIMIT <= out[bound] <= SCALE_LIMIT):
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
    defaults = {**_COMMON_DEFAULTS, **_TASK_DEFAULTS[task]}
    unknown = sorted(str(k) for k in settings if k not in defaults)
    if unknown:
        raise ValueError(
            f"unknown setting {unknown[0]!r} for a {task} block (known: {', '.join(defaults)})"
        )
    out = copy.deepcopy({**defaults, **settings})
    out["attention_checks"] = _check_attention_checks(out["attention_checks"])
    if out["practice"] is not None:
        _check_bool("practice", out["practice"])
    cap, least = out["n_identities"], _min_identities(task)
    if cap is not None and not (_is_int(cap) and cap >= least):
        raise ValueError(f"n_identities must be an integer of at least {least}, got {cap!r}")
    if task == "match":
        if out["presentation"] not in PRESENTATIONS:
            raise ValueError(
                f"presentation must be one of {', '.join(PRESENTATIONS)},"
                f" got {out['presentation']!r}"
            )
        low, high = EXPOSURE_MS_RANGE
        if not (_is_int(out["exposure_ms"]) and low <= out["exposure_ms"] <= high):
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


def _min_identities(task: str) -> int:
    """Return how many identities a block of this task needs at least."""
    per_condition = len(CONDITIONS) if task in CONDITION_TASKS else 1
    return MIN_PER_CONDITION * per_condition


# --- lists --------------------------------------------------------------------------------


def choose_list(counts: Sequence[int], rng: random.Random | None = None) -> int:
    """Return the index of the list with the fewest participants; ties go to the lowest index.

    With `rng`, ties are broken at random by it instead.
    """
    if not counts or not all(_is_int(c) and c >= 0 for c in counts):
        raise ValueError(f"counts must be a non-empty list of counts of 0 or more, got {counts!r}")
    fewest = min(counts)
    tied = [i for i, c in enumerate(counts) if c == fewest]
    return tied[0] if rng is None else rng.choice(tied)


def _check_lists(list_index: int, n_lists: int, conditions: Sequence[str]) -> None:
    """Reject a list count that is not a multiple of the conditions, or an index outside it."""
    if not (_is_int(n_lists) and n_lists >= 1 and n_lists % len(conditions) == 0):
        raise ValueError(
            f"n_lists must be a positive multiple of {len(conditions)}, got {n_lists!r}"
        )
    if not (_is_int(list_index) and 0 <= list_index < n_lists):
        raise ValueError(f"list_index must be from 0 to {n_lists - 1}, got {list_index!r}")


def condition_for(
    rank: int, list_index: int, n_lists: int, conditions: Sequence[str] = CONDITIONS
) -> str:
    """Return the condition of the identity at `rank` in design order for a list (Latin square)."""
    _check_lists(list_index, n_lists, conditions)
    if not (_is_int(rank) and rank >= 0):
        raise ValueError(f"rank must be an integer of 0 or more, got {rank!r}")
    return conditions[(rank + list_index) % len(conditions)]


def design_order(identities: Iterable[IdentityInfo]) -> list[IdentityInfo]:
    """Return identities in design order: by gender, age band, then code."""
    return sorted(identities, key=lambda i: (i.gender, i.age_band, i.code))


def list_conditions(
    identities: Iterable[IdentityInfo], list_index: int, n_lists: int
) -> dict[str, str]:
    """Return each identity's condition (code -> "real"/"ai") in one list."""
    ordered = design_order(identities)
    return {i.code: condition_for(rank, list_index, n_lists) for rank, i in enumerate(ordered)}


def presentation_order(blocks: Iterable[BlockInfo]) -> list[BlockInfo]:
    """Return blocks in running order: choose blocks after the others, otherwise as given."""
    blocks = list(blocks)
    return [b for b in blocks if b.task != "choose"] + [b for b in blocks if b.task == "choose"]


# --- checks -------------------------------------------------------------------------------


def _identity_problems(identities: Sequence[IdentityInfo]) -> list[str]:
    """List problems of the identities themselves: codes, headshots, image keys."""
    problems = []
    codes = Counter(i.code for i in identities)
    if codes[""]:
        problems.append("An identity has no code.")
    problems += [
        f"Identity code {c} is used {n} times." for c, n in sorted(codes.items()) if c and n > 1
    ]
    owners: dict[str, list[str]] = {}
    for identity in sorted(identities, key=lambda i: i.code):
        for source in sorted(identity.headshots):
            if source not in CONDITIONS:
                problems.append(
                    f"Identity {identity.code} has a headshot of unknown source {source!r}"
                    f" (the sources are {' and '.join(CONDITIONS)})."
                )
        problems += [
            f"Identity {identity.code} has no {source} headshot."
            for source in CONDITIONS
            if not identity.headshots.get(source)
        ]
        named = [
            (key, f"{identity.code} {source} headshot")
            for source, key in identity.headshots.items()
        ]
        named += [(key, f"{identity.code} probe") for key in identity.probes]
        for key, what in named:
            if key:
                owners.setdefault(key, []).append(what)
    problems += [
        f"Image {key!r} is used more than once ({', '.join(sorted(whats))})."
        for key, whats in sorted(owners.items())
        if len(whats) > 1
    ]
    return problems


def _block_problems(
    block: BlockInfo, settings: dict[str, Any], identities: Sequence[IdentityInfo]
) -> list[str]:
    """List problems of one valid block against the identities it would show."""
    problems = []
    label = f"Block {block.name!r}"
    if block.task == "match":
        without = sorted(i.code for i in identities if not i.probes)
        if without:
            problems.append(
                f"{label} is a match task, but these identities have no probe photo:"
                f" {', '.join(without)}."
            )
    n_trials = _n_trials(settings, len(identities))
    checks = settings["attention_checks"]
    if _is_int(checks) and checks > n_trials:
        problems.append(
            f"{label} asks for {checks} attention checks but shows only {n_trials} identities."
        )
    if not _is_int(checks) and checks and checks[-1] > n_trials + len(checks):
        problems.append(
            f"{label} has an attention check at position {checks[-1]}, past its end"
            f" ({n_trials + len(checks)} trials with the checks)."
        )
    return problems


def check_design(
    identities: Iterable[IdentityInfo], blocks: Iterable[BlockInfo], n_lists: int
) -> list[str]:
    """Return every reason the design cannot run, as sentences; an empty list when it can."""
    identities, blocks = list(identities), list(blocks)
    problems = _identity_problems(identities)
    if not blocks:
        problems.append("The study has no blocks.")
    names = Counter(b.name for b in blocks)
    if names[""]:
        problems.append("A block has no name.")
    problems += [
        f"Block name {n!r} is used {k} times." for n, k in sorted(names.items()) if n and k > 1
    ]
    for block in blocks:
        try:
            settings = validate_block_settings(block.task, block.settings)
        except ValueError as err:
            problems.append(f"Block {block.name!r}: {err}.")
            continue
        problems += _block_problems(block, settings, identities)
    with_conditions = any(b.task in CONDITION_TASKS for b in blocks)
    least = max((_min_identities(b.task) for b in blocks if b.task in TASKS), default=0)
    if len(identities) < least:
        have = f"{len(identities)} {'identity' if len(identities) == 1 else 'identities'}"
        need = (
            f"match, rate and detect blocks need at least {least},"
            f" {MIN_PER_CONDITION} in each condition of each list"
            if with_conditions
            else f"choose blocks need at least {least}"
        )
        problems.append(f"The study has {have}; {need}.")
    if not (_is_int(n_lists) and n_lists >= 1):
        problems.append(
            f"The number of lists must be a whole number of at least 1, got {n_lists!r}."
        )
    elif with_conditions and n_lists % len(CONDITIONS):
        problems.append(
            f"The study has {n_lists} lists; match, rate and detect blocks need a multiple of"
            f" {len(CONDITIONS)}, one list per row of the {'/'.join(CONDITIONS)} Latin square."
        )
    return problems


# --- schedule -----------------------------------------------------------------------------


def _n_trials(settings: dict[str, Any], n_identities: int) -> int:
    """Return how many identity trials a block shows (checks and practice not counted)."""
    cap = settings["n_identities"]
    return n_identities if cap is None else min(cap, n_identities)


def attention_check_count(checks: Any) -> int:
    """Return how many attention checks a block's setting asks for (a count or a list of
    positions)."""
    if not checks:
        return 0
    return checks if _is_int(checks) else len(checks)


def _attention_positions(checks: Any, n_trials: int) -> set[int]:
    """Return the 1-based positions of the checks; a count is spread evenly over the block."""
    if not _is_int(checks):
        return set(checks)
    length = n_trials + checks
    # Floors of points spaced (length + 1) / (checks + 1) >= 1 apart: distinct, within 1..length.
    return {(j + 1) * (length + 1) // (checks + 1) for j in range(checks)}


def _select(
    ordered: list[IdentityInfo], conditions: dict[str, str], task: str, n: int, rng: random.Random
) -> list[IdentityInfo]:
    """Return the identities a block shows: all, or `n` drawn evenly across conditions."""
    if n >= len(ordered):
        return list(ordered)
    if task == "choose":
        picked = rng.sample(ordered, n)
    else:
        groups = {c: [i for i in ordered if conditions[i.code] == c] for c in CONDITIONS}
        take = {c: n // len(CONDITIONS) for c in CONDITIONS}
        spare = [c for c in CONDITIONS if len(groups[c]) > take[c]]
        rng.shuffle(spare)
        for c in spare[: n - sum(take.values())]:
            take[c] += 1
        picked = [i for c in CONDITIONS for i in rng.sample(groups[c], take[c])]
    keep = {i.code for i in picked}
    return [i for i in ordered if i.code in keep]


def _match_identities(
    selected: list[IdentityInfo], conditions: dict[str, str], rng: random.Random
) -> frozenset[str]:
    """Return the codes shown with their own probe: half of each condition, odd extras split."""
    coin = rng.randrange(2)
    matched: set[str] = set()
    for j, condition in enumerate(CONDITIONS):
        group = [i.code for i in selected if conditions[i.code] == condition]
        rng.shuffle(group)
        extra = len(group) % 2 if (j + coin) % 2 == 0 else 0
        matched.update(group[: len(group) // 2 + extra])
    return frozenset(matched)


def _min_cost_assignment(cost: list[list[int]]) -> list[int]:
    """Return the column of each row in a minimum-cost assignment (rows <= columns; Hungarian)."""
    n, m = len(cost), len(cost[0])
    u, v = [0] * (n + 1), [0] * (m + 1)
    owner, way = [0] * (m + 1), [0] * (m + 1)
    for row in range(1, n + 1):
        owner[0], col = row, 0
        slack, done = [math.inf] * (m + 1), [False] * (m + 1)
        while owner[col]:
            done[col] = True
            r, delta, nxt = owner[col], math.inf, 0
            for j in range(1, m + 1):
                if done[j]:
                    continue
                reduced = cost[r - 1][j - 1] - u[r] - v[j]
                if reduced < slack[j]:
                    slack[j], way[j] = reduced, col
                if slack[j] < delta:
                    delta, nxt = slack[j], j
            for j in range(m + 1):
                if done[j]:
                    u[owner[j]] += delta
                    v[j] -= delta
                else:
                    slack[j] -= delta
            col = nxt
        while col:
            owner[col] = owner[way[col]]
            col = way[col]
    columns = [0] * n
    for j in range(1, m + 1):
        if owner[j]:
            columns[owner[j] - 1] = j - 1
    return columns


def _assign_foils(
    foils: list[IdentityInfo],
    candidates: list[IdentityInfo],
    avoid: frozenset[str],
    rng: random.Random,
) -> dict[str, IdentityInfo]:
    """Map each foil's code to the identity whose probe it is shown with (never its own)."""
    n = len(foils)
    if not n:
        return {}
    if len(candidates) < max(n, 2):
        raise ValueError(
            f"too few foil candidates: {n} foil trial(s) need at least {max(n, 2)} identities"
            f" with probe photos, got {len(candidates)}"
        )
    # Weights nest so that one unit of a worse mismatch outweighs all lesser ones put together.
    jitter = 1 << 10
    borrowed = jitter * (n + 1)
    age = borrowed * (n + 1)
    gender = age * (n + 1)
    own = gender * (n + 1)

    def differs(mine: str, theirs: str) -> int:
        """Count a descriptor as a mismatch only when the foil's identity has it."""
        return int(bool(mine) and mine != theirs)

    cost = [
        [
            own
            if y.code == x.code
            else gender * differs(x.gender, y.gender)
            + age * differs(x.age_band, y.age_band)
            + borrowed * (y.code in avoid)
            + rng.randrange(jitter)
            for y in candidates
        ]
        for x in foils
    ]
    # With two candidates or more, each foil forbids a different column, so an assignment
    # without any identity's own probe always exists.
    columns = _min_cost_assignment(cost)
    return {x.code: candidates[j] for x, j in zip(foils, columns, strict=True)}


def _shown(
    task: str,
    identity: IdentityInfo,
    source: str,
    rng: random.Random,
    probe_owner: IdentityInfo | None = None,
) -> dict[str, Any]:
    """Return a trial's stimulus fields; `source` is the condition, for choose the left side."""
    if task == "choose":
        right = CONDITIONS[1 - CONDITIONS.index(source)]
        return {
            "identity": identity.code,
            "condition": None,
            "image": identity.headshots[source],
            "other_image": identity.headshots[right],
            "left_source": source,
        }
    fields = {"identity": identity.code, "condition": source, "image": identity.headshots[source]}
    if task == "match":
        fields["probe_image"] = rng.choice(sorted(probe_owner.probes))
        fields["probe_identity"] = probe_owner.code
        fields["is_match"] = probe_owner.code == identity.code
    return fields


def _balanced_sides(n: int, rng: random.Random) -> list[str]:
    """Return left sources for `n` choose trials: real on the left in half, shuffled."""
    sides = list(CONDITIONS) * (n // 2) + ([rng.choice(CONDITIONS)] if n % 2 else [])
    rng.shuffle(sides)
    return sides


def _attention_answer(task: str, settings: dict[str, Any], rng: random.Random) -> str:
    """Return the instructed answer of an attention check, drawn from the seed."""
    if task == "rate":
        scale = settings["scales"][0]
        return str(rng.randrange(scale["min"], scale["max"] + 1))
    return rng.choice(ATTENTION_ANSWERS[task])


def _block_trials(
    task: str,
    settings: dict[str, Any],
    ordered: list[IdentityInfo],
    conditions: dict[str, str],
    practice: bool,
    rng: random.Random,
) -> list[dict[str, Any]]:
    """Return the fields of one block's trials in running order (practice, trials, checks)."""
    selected = _select(ordered, conditions, task, _n_trials(settings, len(ordered)), rng)
    candidates = [i for i in ordered if i.probes]
    matched = _match_identities(selected, conditions, rng) if task == "match" else frozenset()
    if task == "choose":
        sides = _balanced_sides(len(selected), rng)
        trials = [_shown(task, i, side, rng) for i, side in zip(selected, sides, strict=True)]
    else:
        foils = [i for i in selected if i.code not in matched] if task == "match" else []
        owners = _assign_foils(foils, candidates, matched, rng)
        trials = [_shown(task, i, conditions[i.code], rng, owners.get(i.code, i)) for i in selected]
    rng.shuffle(trials)

    shown = {i.code for i in selected}
    pool = [i for i in ordered if i.code not in shown] or list(ordered)
    rng.shuffle(pool)
    # Practice and checks take the pool's identities in turn, so checks rarely repeat a person.
    turns = itertools.cycle(pool)

    def extra() -> dict[str, Any]:
        """Return the stimulus of a practice or check trial: the pool's next identity."""
        identity = next(turns)
        if task == "choose":
            return _shown(task, identity, rng.choice(CONDITIONS), rng)
        owner = _assign_foils([identity], candidates, matched, rng) if task == "match" else {}
        return _shown(task, identity, conditions[identity.code], rng, owner.get(identity.code))

    out = [{**extra(), "is_practice": True}] if practice else []
    checks = _attention_positions(settings["attention_checks"], len(trials))
    regular = iter(trials)
    for position in range(1, len(trials) + len(checks) + 1):
        if position in checks:
            stimulus = extra()
            answer = _attention_answer(task, settings, rng)
            out.append({**stimulus, "is_attention": True, "attention_answer": answer})
        else:
            out.append(next(regular))
    return out


def build_schedule(
    identities: Iterable[IdentityInfo],
    blocks: Iterable[BlockInfo],
    list_index: int,
    n_lists: int,
    seed: int,
) -> list[TrialSpec]:
    """Return a participant's whole schedule, positions 1..N, as a pure function of the inputs."""
    identities, blocks = list(identities), list(blocks)
    problems = check_design(identities, blocks, n_lists)
    if problems:
        raise DesignError(problems)
    if not (_is_int(list_index) and 0 <= list_index < n_lists):
        raise ValueError(f"list_index must be from 0 to {n_lists - 1}, got {list_index!r}")
    if not _is_int(seed):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    ordered = design_order(identities)
    running = presentation_order(blocks)
    conditions: dict[str, str] = {}
    if any(b.task in CONDITION_TASKS for b in running):
        conditions = list_conditions(ordered, list_index, n_lists)
    specs: list[TrialSpec] = []
    for index, block in enumerate(running):
        settings = validate_block_settings(block.task, block.settings)
        practice = index == 0 if settings["practice"] is None else settings["practice"]
        # A generator per block, seeded by text (hashed with SHA-512, stable across runs and
        # platforms), keeps each block's draws independent of the blocks before it.
        rng = random.Random(f"{seed}:{block.name}")
        fields = _block_trials(block.task, settings, ordered, conditions, practice, rng)
        specs += [
            TrialSpec(position=len(specs) + k, block=block.name, task=block.task, **f)
            for k, f in enumerate(fields, start=1)
        ]
    return specs


def schedule_fingerprint(specs: Iterable[TrialSpec]) -> str:
    """Return the SHA-256 of a canonical JSON of the schedule, for audit."""
    rows = [dataclasses.asdict(s) for s in specs]
    text = json.dumps(rows, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()
