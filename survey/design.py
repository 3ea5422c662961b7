"""Schedules and counterbalancing: which identities a participant sees, in what condition and
order."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from survey.block_settings import (
    CONDITION_TASKS,
    CONDITIONS,
    MEMORY_CELLS,
    MEMORY_TASKS,
    MIN_PER_CONDITION,
    NAME_CHOICES,
    TASKS,
    is_int,
    min_identities,
    names_people,
    plain_problems,
    validate_block_settings,
)

ATTENTION_ANSWERS = {"match": ("1", "0"), "detect": CONDITIONS, "choose": ("left", "right")}
# Fictional surnames for the learn block's labels: distinct, short, and from many languages.
# Each studied identity gets a different one (with an initial), drawn from the participant's
# seed, so no name goes with one face across participants.
NAME_SURNAMES = (
    "Ortiz", "Novak", "Okafor", "Lindqvist", "Moreau", "Tanaka", "Haddad", "Kowalski",
    "Fischer", "Mensah", "Rossi", "Nakamura", "Petrov", "Almeida", "Byrne", "Costa",
    "Dubois", "Eriksen", "Farouk", "Gallo", "Horvath", "Ivanova", "Jensen", "Kaya",
    "Larsen", "Molina", "Nguyen", "Oyelaran", "Pereira", "Quinn", "Rahman", "Silva",
    "Tembo", "Umarov", "Varga", "Walsh", "Xu", "Yilmaz", "Zeller", "Abbott",
    "Becker", "Chowdhury", "Delgado", "Evans", "Ferreira", "Grant", "Hughes", "Ishikawa",
    "Jovanovic", "Keller", "Lopez", "Marsh", "Nilsen", "Olsen", "Park", "Reyes",
    "Sato", "Torres", "Vogel", "Weber",
)  # fmt: skip
NAME_INITIALS = "ABCDEFGHJKLMNPRSTW"


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
    # Memory: recognise trials, whether the identity was studied (False for a foil).
    studied: bool | None = None
    # Memory: the fictional name shown with the studied headshot (learn), or the name the
    # identity was studied with (recognise; None for foils and without labels).
    label: str | None = None
    # Memory: recognise trials with name recall, the four names offered, in display order.
    options: tuple[str, ...] = ()


class DesignError(ValueError):
    """The design cannot run; `problems` lists every reason as a sentence."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("The design cannot run: " + " ".join(self.problems))


# --- lists --------------------------------------------------------------------------------


def choose_list(counts: Sequence[int], rng: random.Random | None = None) -> int:
    """Return the index of the list with the fewest participants; ties go to the lowest index.

    With `rng`, ties are broken at random by it instead.
    """
    if not counts or not all(is_int(c) and c >= 0 for c in counts):
        raise ValueError(f"counts must be a non-empty list of counts of 0 or more, got {counts!r}")
    fewest = min(counts)
    tied = [i for i, c in enumerate(counts) if c == fewest]
    return tied[0] if rng is None else rng.choice(tied)


def _check_lists(list_index: int, n_lists: int, conditions: Sequence[str]) -> None:
    """Reject a list count that is not a multiple of the conditions, or an index outside it."""
    if not (is_int(n_lists) and n_lists >= 1 and n_lists % len(conditions) == 0):
        raise ValueError(
            f"n_lists must be a positive multiple of {len(conditions)}, got {n_lists!r}"
        )
    if not (is_int(list_index) and 0 <= list_index < n_lists):
        raise ValueError(f"list_index must be from 0 to {n_lists - 1}, got {list_index!r}")


def condition_for(
    rank: int, list_index: int, n_lists: int, conditions: Sequence[str] = CONDITIONS
) -> str:
    """Return the condition of the identity at `rank` in design order for a list (Latin square)."""
    _check_lists(list_index, n_lists, conditions)
    if not (is_int(rank) and rank >= 0):
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


def memory_role(rank: int, list_index: int, n_lists: int) -> str:
    """Return an identity's role in a memory study's list: "real"/"ai" (studied so) or "foil".

    The encoding condition is `condition_for`; the identity is studied when
    ``rank // 2 + list_index // 2`` is even, so over four lists it is studied real once, studied
    ai once and a foil twice.
    """
    _check_lists(list_index, n_lists, CONDITIONS)
    if n_lists % MEMORY_CELLS:
        raise ValueError(
            f"a memory study needs a multiple of {MEMORY_CELLS} lists, got {n_lists!r}"
        )
    condition = condition_for(rank, list_index, n_lists)
    return condition if (rank // 2 + list_index // 2) % 2 == 0 else "foil"


def memory_roles(
    identities: Iterable[IdentityInfo], list_index: int, n_lists: int
) -> dict[str, str]:
    """Return each identity's memory role (code -> "real", "ai" or "foil") in one list."""
    ordered = design_order(identities)
    return {i.code: memory_role(rank, list_index, n_lists) for rank, i in enumerate(ordered)}


def presentation_order(blocks: Iterable[BlockInfo]) -> list[BlockInfo]:
    """Return blocks in running order: choose blocks after the others, otherwise as given."""
    blocks = list(blocks)
    return [b for b in blocks if b.task != "choose"] + [b for b in blocks if b.task == "choose"]


# Block order across participants: as configured ("fixed"), shuffled per participant from the
# seed ("random"), or the rows of a balanced Latin square dealt in start order
# ("counterbalanced"). Each keeps choose blocks after the others: the order varies within the
# blocks before them and within the choose blocks.
BLOCK_ORDERS = ("fixed", "random", "counterbalanced")


def balanced_latin_square(n: int) -> list[list[int]]:
    """Return the rows of a Williams balanced Latin square over 0..n-1.

    Each item takes each position once in every n rows (2n when n is odd), and each item
    follows every other immediately equally often. Row r of the first n is the sequence 0, 1,
    n-1, 2, n-2, ... shifted by r; for an odd n the reversed rows follow, which balances the
    order of neighbours.
    """
    if not is_int(n) or n < 1:
        raise ValueError(f"a Latin square needs 1 or more items, got {n!r}")
    first, low, high = [0], 1, n - 1
    while len(first) < n:
        first.append(low)
        low += 1
        if len(first) < n:
            first.append(high)
            high -= 1
    rows = [[(item + r) % n for item in first] for r in range(n)]
    return rows if n % 2 == 0 else rows + [row[::-1] for row in rows]


def block_order(
    blocks: Iterable[BlockInfo],
    mode: str = "fixed",
    seed: int = 0,
    start_index: int = 0,
    last: Iterable[str] = (),
) -> tuple[list[BlockInfo], int | None]:
    """Return a participant's running order of the blocks and, counterbalanced, the square's
    row it took (None otherwise).

    The blocks named in `last`, and choose blocks always, stay at the end, after the others
    (in the order listed when fixed); the order varies within the blocks before them and
    within those at the end. `start_index` is the participant's 0-based place in the study's
    start order: participant k takes row k modulo the number of rows, for both groups alike.
    `seed` drives "random".
    """
    if mode not in BLOCK_ORDERS:
        raise ValueError(
            f"block order must be one of {', '.join(BLOCK_ORDERS)} (as configured, shuffled "
            f"for each participant, or counterbalanced over participants), got {mode!r}"
        )
    if not is_int(start_index) or start_index < 0:
        raise ValueError(f"start_index must be a whole number of 0 or more, got {start_index!r}")
    kept = set(last)
    blocks = list(blocks)
    groups: list[list[BlockInfo]] = [[], []]
    for block in blocks:
        groups[block.task == "choose" or block.name in kept].append(block)
    if mode == "fixed":
        return groups[0] + groups[1], None
    if mode == "random":
        rng = random.Random(f"{seed}:block-order")
        for group in groups:
            rng.shuffle(group)
        return groups[0] + groups[1], None
    # One row number for both groups, so a participant's place in the start order tells it.
    sizes = [len(g) for g in groups if g]
    period = math.lcm(*(len(balanced_latin_square(n)) for n in sizes)) if sizes else 1
    row = start_index % period
    ordered = []
    for group in groups:
        if group:
            square = balanced_latin_square(len(group))
            ordered += [group[i] for i in square[row % len(square)]]
    return ordered, row


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
    problems: list[str] = []
    if block.task in MEMORY_TASKS:
        return problems  # see _memory_problems
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
    if is_int(checks) and checks > n_trials:
        problems.append(
            f"{label} asks for {checks} attention checks but shows only {n_trials} identities."
        )
    if not is_int(checks) and checks and checks[-1] > n_trials + len(checks):
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
    ranges: dict[str, tuple[str, int, int]] = {}
    for block in blocks:
        try:
            settings = validate_block_settings(block.task, block.settings)
        except ValueError as err:
            # Said in the workspace's words where the setting rules know the problem.
            plain = plain_problems(block.task, block.settings or {}, err)
            problems += [f"Block {block.name!r}: {m}" for m in plain]
            continue
        problems += _block_problems(block, settings, identities)
        for scale in settings.get("scales") or ():
            first = ranges.setdefault(scale["key"], (block.name, scale["min"], scale["max"]))
            if first[1:] != (scale["min"], scale["max"]):
                problems.append(
                    f"Rating scale {scale['key']!r} runs from {first[1]} to {first[2]} in block "
                    f"{first[0]!r} but from {scale['min']} to {scale['max']} in block "
                    f"{block.name!r}: a scale rated in several blocks needs one range, so that "
                    "its answers can be analysed together."
                )
    problems += _memory_problems(identities, blocks, n_lists)
    with_conditions = any(b.task in CONDITION_TASKS for b in blocks)
    least = max((min_identities(b.task) for b in blocks if b.task in TASKS), default=0)
    if len(identities) < least:
        have = f"{len(identities)} {'identity' if len(identities) == 1 else 'identities'}"
        if any(b.task in MEMORY_TASKS for b in blocks):
            need = (
                f"learn and recognise blocks need at least {least}, {MIN_PER_CONDITION} studied"
                f" as real, {MIN_PER_CONDITION} studied as AI and {2 * MIN_PER_CONDITION} foils"
                " in each list"
            )
        elif with_conditions:
            need = (
                f"match, rate and detect blocks need at least {least},"
                f" {MIN_PER_CONDITION} in each condition of each list"
            )
        else:
            need = f"choose blocks need at least {least}"
        problems.append(f"The study has {have}; {need}.")
    if not (is_int(n_lists) and n_lists >= 1):
        problems.append(
            f"The number of lists must be a whole number of at least 1, got {n_lists!r}."
        )
    elif with_conditions and n_lists % len(CONDITIONS):
        problems.append(
            f"The study has {n_lists} lists; match, rate and detect blocks need a multiple of"
            f" {len(CONDITIONS)}, one list per row of the {'/'.join(CONDITIONS)} Latin square."
        )
    return problems


def _memory_problems(
    identities: Sequence[IdentityInfo], blocks: Sequence[BlockInfo], n_lists: int
) -> list[str]:
    """List problems of a memory design: one learn block, then one recognise block, and so on."""
    learn = [b for b in blocks if b.task == "learn"]
    recognise = [b for b in blocks if b.task == "recognise"]
    if not learn and not recognise:
        return []
    problems = []
    if len(learn) != 1 or len(recognise) != 1:
        problems.append(
            f"A memory study needs one learn block and one recognise block; this one has"
            f" {len(learn)} learn and {len(recognise)} recognise block(s)."
        )
        return problems
    running = [b.name for b in presentation_order(blocks)]
    if running.index(recognise[0].name) < running.index(learn[0].name):
        problems.append(
            f"The recognise block {recognise[0].name!r} must come after the learn block"
            f" {learn[0].name!r}: the test phase follows the study phase."
        )
    without = sorted(i.code for i in identities if not i.probes)
    if without:
        problems.append(
            f"The recognise block {recognise[0].name!r} shows each person in a new photo, but"
            f" these identities have no probe photo: {', '.join(without)}."
        )
    if is_int(n_lists) and n_lists >= 1 and n_lists % MEMORY_CELLS:
        problems.append(
            f"The study has {n_lists} lists; learn and recognise blocks need a multiple of"
            f" {MEMORY_CELLS}, so that every identity is studied as real, studied as AI and a"
            " foil equally often."
        )
    try:
        learn_settings = validate_block_settings("learn", learn[0].settings)
        test_settings = validate_block_settings("recognise", recognise[0].settings)
    except ValueError:
        return problems  # reported with the block
    named = names_people(learn_settings["label"])
    if test_settings["name_recall"] and not named:
        problems.append(
            f"The recognise block {recognise[0].name!r} asks for names, but the learn block"
            f" {learn[0].name!r} shows none: give it a label with {{name}}."
        )
    studied = (len(identities) + 1) // 2
    if named and studied > len(NAME_SURNAMES):
        problems.append(
            f"The learn block {learn[0].name!r} names up to {studied} people, but there are"
            f" {len(NAME_SURNAMES)} names: use at most {2 * len(NAME_SURNAMES)} identities or"
            " no label."
        )
    return problems


# --- schedule -----------------------------------------------------------------------------


def _n_trials(settings: dict[str, Any], n_identities: int) -> int:
    """Return how many identity trials a block shows (checks and practice not counted)."""
    cap = settings["n_identities"]
    return n_identities if cap is None else min(cap, n_identities)


def _attention_positions(checks: Any, n_trials: int) -> set[int]:
    """Return the 1-based positions of the checks; a count is spread evenly over the block."""
    if not is_int(checks):
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


def _memory_names(targets: list[IdentityInfo], seed: int) -> dict[str, str]:
    """Give each studied identity a different fictional name, drawn from the seed."""
    rng = random.Random(f"{seed}:memory names")
    surnames = rng.sample(NAME_SURNAMES, len(targets))
    return {
        t.code: f"{rng.choice(NAME_INITIALS)}. {surname}"
        for t, surname in zip(targets, surnames, strict=True)
    }


def _memory_trials(
    task: str,
    settings: dict[str, Any],
    ordered: list[IdentityInfo],
    roles: dict[str, str],
    names: dict[str, str],
    rng: random.Random,
) -> list[dict[str, Any]]:
    """Return the fields of a learn or recognise block's trials in running order."""
    targets = [i for i in ordered if roles[i.code] != "foil"]
    if task == "learn":
        trials = [
            {
                "identity": i.code,
                "condition": roles[i.code],
                "image": i.headshots[roles[i.code]],
                "label": names.get(i.code),
            }
            for i in targets
        ]
        rng.shuffle(trials)
        return trials
    trials = []
    for i in ordered:
        studied = roles[i.code] != "foil"
        probe = rng.choice(sorted(i.probes))
        fields: dict[str, Any] = {
            "identity": i.code,
            "condition": roles[i.code] if studied else None,
            "image": probe,
            "probe_image": probe,
            "probe_identity": i.code,
            "studied": studied,
            "label": names.get(i.code) if studied else None,
        }
        if settings["name_recall"]:
            others = sorted(n for code, n in names.items() if code != i.code)
            offered = rng.sample(others, NAME_CHOICES - 1 if studied else NAME_CHOICES)
            if studied:
                offered.append(names[i.code])
            rng.shuffle(offered)
            fields["options"] = tuple(offered)
        trials.append(fields)
    rng.shuffle(trials)
    return trials


def build_schedule(
    identities: Iterable[IdentityInfo],
    blocks: Iterable[BlockInfo],
    list_index: int,
    n_lists: int,
    seed: int,
    order: str = "fixed",
    start_index: int = 0,
    last: Iterable[str] = (),
) -> list[TrialSpec]:
    """Return a participant's whole schedule, positions 1..N, as a pure function of the inputs.

    `order`, `start_index` and `last` set the order of the blocks (`block_order`)."""
    identities, blocks = list(identities), list(blocks)
    problems = check_design(identities, blocks, n_lists)
    if problems:
        raise DesignError(problems)
    if not (is_int(list_index) and 0 <= list_index < n_lists):
        raise ValueError(f"list_index must be from 0 to {n_lists - 1}, got {list_index!r}")
    if not is_int(seed):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    ordered = design_order(identities)
    running, _row = block_order(blocks, order, seed, start_index, last)
    conditions: dict[str, str] = {}
    if any(b.task in CONDITION_TASKS for b in running):
        conditions = list_conditions(ordered, list_index, n_lists)
    roles: dict[str, str] = {}
    names: dict[str, str] = {}
    if any(b.task in MEMORY_TASKS for b in running):
        roles = memory_roles(ordered, list_index, n_lists)
        (learn,) = [b for b in running if b.task == "learn"]
        if names_people(validate_block_settings("learn", learn.settings)["label"]):
            names = _memory_names([i for i in ordered if roles[i.code] != "foil"], seed)
    specs: list[TrialSpec] = []
    for index, block in enumerate(running):
        settings = validate_block_settings(block.task, block.settings)
        if block.task in MEMORY_TASKS:
            rng = random.Random(f"{seed}:{block.name}")
            fields = _memory_trials(block.task, settings, ordered, roles, names, rng)
            specs += [
                TrialSpec(position=len(specs) + k, block=block.name, task=block.task, **f)
                for k, f in enumerate(fields, start=1)
            ]
            continue
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
    # Memory fields enter only when set, so schedules without memory blocks keep the
    # fingerprints they had before those fields existed.
    memory = {"studied": None, "label": None, "options": ()}
    rows = [
        {k: v for k, v in dataclasses.asdict(s).items() if not (k in memory and v == memory[k])}
        for s in specs
    ]
    text = json.dumps(rows, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()
