"""Block flow: the study's block order and breaks (settings, checks in plain words) and the pages
a participant meets between trials (block instructions, breaks, a block's questions)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from survey.block_settings import MEMORY_TASKS, validate_block_settings
from survey.design import block_order

# Keys of Study.settings.
ORDER_KEY = "block_order"
LAST_KEY = "blocks_last"
BREAKS_KEY = "block_breaks"
MESSAGE_KEY = "break_message"
FLOW_KEYS = (ORDER_KEY, LAST_KEY, BREAKS_KEY, MESSAGE_KEY)

ORDERS = ("fixed", "random", "counterbalanced")
MESSAGE_MAX = 1000


@dataclass(frozen=True)
class FlowSettings:
    """A study's block flow as it runs (defaults filled in)."""

    order: str = "fixed"
    # Names of blocks kept at the end, after the others; None: the default (choose blocks).
    last: tuple[str, ...] | None = None
    breaks: bool = False
    message: str = ""


def flow_settings(settings: Mapping[str, Any] | None) -> FlowSettings:
    """Read the block flow from a study's settings; what cannot be read takes its default."""
    settings = settings or {}
    order = settings.get(ORDER_KEY)
    last = settings.get(LAST_KEY)
    message = settings.get(MESSAGE_KEY)
    return FlowSettings(
        order=order if order in ORDERS else "fixed",
        last=tuple(str(n) for n in last) if isinstance(last, (list, tuple)) else None,
        breaks=settings.get(BREAKS_KEY) is True,
        message=message if isinstance(message, str) else "",
    )


def kept_last(blocks: Iterable[Any], last: Sequence[str] | None) -> tuple[str, ...]:
    """Return the names of the blocks that stay at the end: those named, and choose blocks
    always (they show both headshots of a person, so they run after the others)."""
    named = set(last or ())
    return tuple(b.name for b in blocks if b.task == "choose" or b.name in named)


def flow_errors(
    order: Any, last: Any, breaks: Any, message: Any, blocks: Sequence[Any]
) -> dict[str, list[str]]:
    """Return every problem of the block flow's settings in plain words, keyed by field."""
    errors: dict[str, list[str]] = {}
    if order not in ORDERS:
        errors["block_order"] = [
            f"Block order: choose fixed, randomised or counterbalanced; you wrote {order!r}."
        ]
    names = {b.name for b in blocks}
    if not isinstance(last, (list, tuple)) or not all(isinstance(n, str) for n in last):
        errors["blocks_last"] = ["Blocks kept at the end: tick blocks of this study."]
    else:
        unknown = sorted(set(last) - names)
        if unknown:
            errors["blocks_last"] = [
                f"Blocks kept at the end: the study has no block called {unknown[0]!r}."
            ]
    memory = [b.name for b in blocks if b.task in MEMORY_TASKS]
    if order in ("random", "counterbalanced") and memory:
        errors.setdefault("block_order", []).append(
            f"Block order: the learn and recognise blocks ({', '.join(memory)}) must run in the "
            "order listed, the test phase after the study phase with the filler between; keep "
            "the order fixed."
        )
    learn = [b.name for b in blocks if b.task == "learn"]
    recognise = [b.name for b in blocks if b.task == "recognise"]
    if len(learn) == 1 and len(recognise) == 1 and "blocks_last" not in errors:
        running = [b.name for b in block_order(blocks, "fixed", last=kept_last(blocks, last))[0]]
        if running.index(recognise[0]) < running.index(learn[0]):
            errors["blocks_last"] = [
                f"Blocks kept at the end: keeping {learn[0]!r} at the end puts it after the "
                f"recognise block {recognise[0]!r}; the study phase must come first. Keep both "
                "at the end, or neither."
            ]
    if not isinstance(breaks, bool):
        errors["block_breaks"] = [f"Breaks between blocks: choose yes or no; you wrote {breaks!r}."]
    if not isinstance(message, str):
        errors["break_message"] = ["Break message: write a text, or leave it empty."]
    elif len(message) > MESSAGE_MAX:
        errors["break_message"] = [
            f"Break message: at most {MESSAGE_MAX:,} characters; this has {len(message):,}."
        ]
    return errors


def design_entry(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return the part of the block flow that shapes schedules, for the design's hash: empty
    when the order is the default (so the designs hashed before it existed keep their hash)."""
    flow = flow_settings(settings)
    entry: dict[str, Any] = {}
    if flow.order != "fixed":
        entry["block_order"] = flow.order
    if flow.last:
        entry["blocks_last"] = sorted(flow.last)
    return entry


# --- the pages between trials ------------------------------------------------------------------


def plan_steps(
    trials: Sequence[Any],
    blocks: Mapping[str, Any],
    asked_after: Iterable[str],
    breaks: bool,
) -> list[dict[str, Any]]:
    """Return the pages a participant meets between trials, in order.

    `trials` are the schedule's trials in running order (position, block name, is_practice);
    `blocks` maps a block name to its BlockInfo (task and settings); `asked_after` names the
    blocks with questions of their own; `breaks` turns on the break between blocks. Each page
    is ``{"at": position, "kind": ..., "block": name}``: it comes before the trial at that
    position (the number of trials plus one: after the last). At one place the kinds come in
    this order: the questions after the block that ended, the break between blocks, a break
    within a block ("pause"), the instructions of the block that starts. A break between
    blocks also says how many blocks are done (``done``, of ``blocks``); every page's progress
    (trials answered, of how many) follows from ``at``.
    """
    asked = set(asked_after)
    runs: list[tuple[str, list[Any]]] = []
    for trial in trials:
        if runs and runs[-1][0] == trial.block:
            runs[-1][1].append(trial)
        else:
            runs.append((trial.block, [trial]))
    steps: list[dict[str, Any]] = []
    for index, (name, run) in enumerate(runs):
        info = blocks[name]
        settings = validate_block_settings(info.task, info.settings)
        first = run[0].position
        if index and breaks:
            steps.append(
                {"at": first, "kind": "break", "block": name, "done": index, "blocks": len(runs)}
            )
        if settings["instructions"].strip():
            steps.append({"at": first, "kind": "instructions", "block": name})
        every = settings["break_every"]
        if every:
            counted = [t for t in run if not t.is_practice]
            for number, trial in enumerate(counted[:-1], start=1):
                if number % every == 0:
                    steps.append({"at": trial.position + 1, "kind": "pause", "block": name})
        if name in asked:
            steps.append({"at": run[-1].position + 1, "kind": "questions", "block": name})
    return steps


def next_at(steps: Sequence[Mapping[str, Any]] | None, passed: int) -> int | None:
    """Return the position the next page comes before once `passed` pages are passed (None:
    no page left)."""
    if not steps or passed >= len(steps):
        return None
    return int(steps[passed]["at"])


def pending(
    steps: Sequence[Mapping[str, Any]] | None,
    passed: int,
    current: int,
    questions_only: bool = False,
) -> tuple[int, dict[str, Any]] | None:
    """Return the number and the page due before the trial at position `current` (the number
    of trials plus one when all are answered), or None when the trial comes next.

    `questions_only` (a participant who has completed the trials): only a block's questions are
    still asked; instructions and breaks not passed (a participant who answered past them
    without the pages) are left out.
    """
    for index in range(passed, len(steps or ())):
        step = steps[index]  # type: ignore[index]
        if int(step["at"]) > current:
            return None
        if not questions_only or step["kind"] == "questions":
            return index, dict(step)
    return None
