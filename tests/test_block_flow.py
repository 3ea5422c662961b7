"""Block flow as pure functions: the settings and their plain-words checks, the pages planned
between trials, blocks kept at the end, and the methods paragraph's sentences."""

from __future__ import annotations

import pytest

from survey import flow
from survey.block_settings import fit_errors, setting_errors, validate_block_settings
from survey.design import BlockInfo, TrialSpec, block_order, build_schedule
from survey.findings.methods import methods_paragraph
from tests.helpers import make_identities

BLOCKS = [
    BlockInfo("recognition", "match", {"instructions": "Same person?", "break_every": 4}),
    BlockInfo("rating", "rate", {}),
    BlockInfo("pairs", "choose", {"instructions": "Pick one."}),
]


def names(blocks) -> list[str]:
    return [b.name for b in blocks]


# --- block settings: instructions and break_every ---------------------------------------------


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            {"break_every": 1},
            {
                "break_every": [
                    "Break every must be a whole number of trials between 2 and 1,000, or empty "
                    "for no break within the block; you wrote 1."
                ]
            },
        ),
        (
            {"break_every": "ten"},
            {
                "break_every": [
                    "Break every must be a whole number of trials between 2 and 1,000, or empty "
                    "for no break within the block; you wrote 'ten'."
                ]
            },
        ),
        (
            {"instructions": "x" * 5001},
            {"instructions": ["Block instructions: at most 5,000 characters; this has 5,001."]},
        ),
        (
            {"instructions": 3},
            {
                "instructions": [
                    "Block instructions: write a text, or leave it empty for none; you wrote 3."
                ]
            },
        ),
    ],
)
def test_flow_settings_of_a_block_are_checked_in_plain_words(settings, expected):
    for task in ("match", "rate", "choose", "detect", "learn", "recognise"):
        assert setting_errors(task, settings) == expected
        with pytest.raises(ValueError):
            validate_block_settings(task, settings)


def test_a_break_that_never_comes_is_refused_against_the_identities():
    settings = validate_block_settings("rate", {"break_every": 9, "attention_checks": [2]})
    assert fit_errors("rate", settings, 8, 2) == {
        "break_every": [
            "Break every: a break after every 9 trials never comes in this block, which has 9 "
            "trials; choose fewer, or leave it empty for no break within the block."
        ]
    }
    assert fit_errors("rate", {**settings, "break_every": 8}, 8, 2) == {}
    # Before any identity is uploaded, the fit waits.
    assert fit_errors("rate", settings, 0, 2) == {}


# --- study settings: order, blocks kept last, breaks ------------------------------------------


def test_study_flow_settings_default_and_read_back():
    assert flow.flow_settings(None) == flow.FlowSettings("fixed", None, False, "")
    read = flow.flow_settings(
        {"block_order": "counterbalanced", "blocks_last": ["rating"], "block_breaks": True}
    )
    assert read == flow.FlowSettings("counterbalanced", ("rating",), True, "")
    # What cannot be read runs as the default.
    assert flow.flow_settings({"block_order": "sideways", "block_breaks": "yes"}).order == "fixed"
    assert flow.kept_last(BLOCKS, None) == ("pairs",)
    assert flow.kept_last(BLOCKS, ["recognition"]) == ("recognition", "pairs")


@pytest.mark.parametrize(
    ("order", "last", "breaks", "message", "blocks", "expected"),
    [
        (
            "shuffled",
            [],
            False,
            "",
            BLOCKS,
            {
                "block_order": [
                    "Block order: choose fixed, randomised or counterbalanced; you wrote "
                    "'shuffled'."
                ]
            },
        ),
        (
            "fixed",
            ["ratings"],
            False,
            "",
            BLOCKS,
            {"blocks_last": ["Blocks kept at the end: the study has no block called 'ratings'."]},
        ),
        (
            "fixed",
            "rating",
            False,
            "",
            BLOCKS,
            {"blocks_last": ["Blocks kept at the end: tick blocks of this study."]},
        ),
        (
            "fixed",
            [],
            "yes",
            "x" * 1001,
            BLOCKS,
            {
                "block_breaks": ["Breaks between blocks: choose yes or no; you wrote 'yes'."],
                "break_message": ["Break message: at most 1,000 characters; this has 1,001."],
            },
        ),
        (
            "random",
            [],
            False,
            "",
            [
                BlockInfo("meet", "learn"),
                BlockInfo("filler", "rate"),
                BlockInfo("test", "recognise"),
            ],
            {
                "block_order": [
                    "Block order: the learn and recognise blocks (meet, test) must run in the "
                    "order listed, the test phase after the study phase with the filler between; "
                    "keep the order fixed."
                ]
            },
        ),
        (
            "fixed",
            ["meet"],
            False,
            "",
            [
                BlockInfo("meet", "learn"),
                BlockInfo("filler", "rate"),
                BlockInfo("test", "recognise"),
            ],
            {
                "blocks_last": [
                    "Blocks kept at the end: keeping 'meet' at the end puts it after the "
                    "recognise block 'test'; the study phase must come first. Keep both at the "
                    "end, or neither."
                ]
            },
        ),
        ("counterbalanced", ["recognition"], True, "Stretch.", BLOCKS, {}),
    ],
)
def test_every_flow_error_is_said_in_plain_words(order, last, breaks, message, blocks, expected):
    assert flow.flow_errors(order, last, breaks, message, blocks) == expected


def test_the_design_hash_covers_the_order_only_when_it_is_not_the_default():
    assert flow.design_entry({}) == {}
    assert flow.design_entry({"block_order": "fixed", "block_breaks": True}) == {}
    assert flow.design_entry({"block_order": "random", "blocks_last": ["b", "a"]}) == {
        "block_order": "random",
        "blocks_last": ["a", "b"],
    }


# --- the order: blocks kept at the end --------------------------------------------------------


def test_blocks_named_last_stay_after_the_others_in_every_mode():
    blocks = [
        BlockInfo("a", "match"),
        BlockInfo("b", "rate"),
        BlockInfo("pairs", "choose"),
        BlockInfo("c", "detect"),
    ]
    assert names(block_order(blocks, "fixed", last=["a"])[0]) == ["b", "c", "a", "pairs"]
    for seed in range(20):
        order, row = block_order(blocks, "random", seed=seed, last=["a"])
        assert set(names(order)[:2]) == {"b", "c"} and set(names(order)[2:]) == {"a", "pairs"}
        assert row is None
    rows = [block_order(blocks, "counterbalanced", start_index=k, last=["a"]) for k in range(4)]
    # Two groups of two blocks: two rows each, so the rows cycle with period 2.
    assert [row for _, row in rows] == [0, 1, 0, 1]
    assert [names(o) for o, _ in rows[:2]] == [["b", "c", "a", "pairs"], ["c", "b", "pairs", "a"]]


def test_the_schedule_follows_the_order_and_keeps_each_block_together():
    identities = make_identities(8)
    blocks = [BlockInfo("a", "match"), BlockInfo("b", "rate"), BlockInfo("c", "detect")]
    for k in range(6):
        schedule = build_schedule(identities, blocks, 0, 2, 11, "counterbalanced", k)
        running = list(dict.fromkeys(t.block for t in schedule))
        assert running == names(block_order(blocks, "counterbalanced", start_index=k)[0])
        # The block that runs first opens with the practice trial, whichever it is.
        assert schedule[0].is_practice and schedule[0].block == running[0]
        assert sum(t.is_practice for t in schedule) == 1


# --- pages between trials ---------------------------------------------------------------------


def trials(*runs: tuple[str, int, bool]) -> list[TrialSpec]:
    """Trials in running order: (block, count, opens with a practice trial)."""
    out: list[TrialSpec] = []
    for block, count, practice in runs:
        for k in range(count):
            out.append(
                TrialSpec(
                    position=len(out) + 1,
                    block=block,
                    task="match",
                    identity="P001",
                    condition="real",
                    image="1",
                    is_practice=practice and k == 0,
                )
            )
    return out


def test_pages_between_trials_come_in_order_at_their_places():
    blocks = {b.name: b for b in BLOCKS}
    # recognition: a practice and 9 trials; rating 5; pairs 3.
    schedule = trials(("recognition", 10, True), ("rating", 5, False), ("pairs", 3, False))
    steps = flow.plan_steps(schedule, blocks, {"recognition", "pairs"}, breaks=True)
    assert steps == [
        {"at": 1, "kind": "instructions", "block": "recognition"},
        # Every 4 trials of the block, the practice not counted: after its 4th and 8th.
        {"at": 6, "kind": "pause", "block": "recognition"},
        {"at": 10, "kind": "pause", "block": "recognition"},
        {"at": 11, "kind": "questions", "block": "recognition"},
        {"at": 11, "kind": "break", "block": "rating", "done": 1, "blocks": 3},
        {"at": 16, "kind": "break", "block": "pairs", "done": 2, "blocks": 3},
        {"at": 16, "kind": "instructions", "block": "pairs"},
        {"at": 19, "kind": "questions", "block": "pairs"},
    ]
    assert flow.next_at(steps, 0) == 1 and flow.next_at(steps, 8) is None
    assert flow.pending(steps, 0, 1) == (0, steps[0])
    assert flow.pending(steps, 1, 5) is None
    assert flow.pending(steps, 1, 6) == (1, steps[1])
    # Every trial answered (position 19): only a block's questions are still asked.
    assert flow.pending(steps, 5, 19, questions_only=True) == (7, steps[7])


def test_a_pause_at_the_end_of_a_block_is_left_to_the_break_between_blocks():
    blocks = {"a": BlockInfo("a", "rate", {"break_every": 2})}
    steps = flow.plan_steps(trials(("a", 4, False)), blocks, (), breaks=True)
    assert steps == [{"at": 3, "kind": "pause", "block": "a"}]


# --- the methods paragraph ---------------------------------------------------------------------


def methods(**design) -> str:
    base = {
        "n_identities": 8,
        "n_lists": 2,
        "blocks": [
            {"name": "recognition", "task": "match", "settings": {"instructions": "Look."}},
            {"name": "rating", "task": "rate", "settings": {"break_every": 5}},
            {"name": "detection", "task": "detect", "settings": {}},
            {"name": "pairs", "task": "choose", "settings": {}},
        ],
        "blocks_last": ["pairs"],
    }
    return methods_paragraph({**base, **design}, {}, {}, {})


def test_the_methods_paragraph_says_how_the_order_was_assigned_and_which_pages_ran():
    fixed = methods(block_order="fixed")
    assert "in this order: (1) a recognition block (recognition)" in fixed
    assert "opened by a practice trial" in fixed
    assert "The recognition block began with its own instructions page." in fixed
    assert "self-paced break every 5 trials of the rating block" in fixed
    counterbalanced = methods(block_order="counterbalanced", block_breaks=True)
    assert "listed here" in counterbalanced
    assert (
        "counterbalanced across participants with a balanced Latin square (Williams design; "
        "6 rows, each block in each position equally often and each block following every "
        "other equally often), rows assigned in order of arrival, pairs always after the "
        "others" in counterbalanced
    )
    assert "The block that ran first opened with a practice trial" in counterbalanced
    assert "break between blocks and every 5 trials of the rating block" in counterbalanced
    randomised = methods(block_order="random")
    assert "randomised for each participant from a stored seed, pairs always after" in randomised
