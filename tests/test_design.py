"""Schedules and counterbalancing: lists, conditions, match foils, checks, practice and audit."""

from __future__ import annotations

import dataclasses
import random
import re
from collections import Counter, defaultdict

import pytest

from survey import design
from survey.block_settings import validate_block_settings
from survey.design import (
    BlockInfo,
    DesignError,
    IdentityInfo,
    TrialSpec,
    build_schedule,
    check_design,
    choose_list,
    condition_for,
    list_conditions,
    schedule_fingerprint,
)
from tests.helpers import ALL_TASKS, make_identities

CONDITION_TASKS = ("match", "rate", "detect")


def regular(specs: list[TrialSpec], block: str | None = None) -> list[TrialSpec]:
    """Return the analysed trials (no practice, no checks), of one block when named."""
    return [
        s
        for s in specs
        if not s.is_practice and not s.is_attention and (block is None or s.block == block)
    ]


# --- lists and conditions -------------------------------------------------------------------


def test_condition_for_is_a_latin_square_over_real_and_ai():
    rows = [[condition_for(rank, lst, 2) for rank in range(4)] for lst in range(2)]
    assert rows == [["real", "ai", "real", "ai"], ["ai", "real", "ai", "real"]]


def test_condition_for_general_square_has_each_condition_once_per_row_and_column():
    conditions = ("a", "b", "c")
    square = [[condition_for(r, lst, 3, conditions) for r in range(3)] for lst in range(3)]
    assert all(sorted(row) == ["a", "b", "c"] for row in square)
    assert all(sorted(col) == ["a", "b", "c"] for col in zip(*square, strict=True))


@pytest.mark.parametrize(
    ("rank", "list_index", "n_lists", "message"),
    [
        (0, 0, 3, "n_lists must be a positive multiple of 2, got 3"),
        (0, 0, 0, "n_lists must be a positive multiple of 2, got 0"),
        (0, 2, 2, "list_index must be from 0 to 1, got 2"),
        (-1, 0, 2, "rank must be an integer of 0 or more, got -1"),
    ],
)
def test_condition_for_rejects_bad_arguments(rank, list_index, n_lists, message):
    with pytest.raises(ValueError, match=message):
        condition_for(rank, list_index, n_lists)


def test_lists_mix_descriptors_in_each_condition():
    # Codes put all women first: splitting by code alone would make one condition all women.
    identities = make_identities(8, [("f", "18-29")] * 4 + [("m", "18-29")] * 4)
    genders = {i.code: i.gender for i in identities}
    for lst in range(2):
        conditions = list_conditions(identities, lst, 2)
        for condition in ("real", "ai"):
            shown = [genders[c] for c, cond in conditions.items() if cond == condition]
            assert Counter(shown) == {"f": 2, "m": 2}


@pytest.mark.parametrize(
    ("counts", "expected"),
    [([0, 0], 0), ([3, 1, 1], 1), ([2, 2, 1, 1], 2), ([5], 0), ([4, 0], 1)],
)
def test_choose_list_picks_fewest_lowest_index_on_ties(counts, expected):
    assert choose_list(counts) == expected


def test_choose_list_breaks_ties_with_a_generator_when_given():
    picks = {choose_list([1, 0, 0, 0], random.Random(seed)) for seed in range(50)}
    assert picks == {1, 2, 3}


@pytest.mark.parametrize("counts", [[], [1, -1], [1, 1.5], None])
def test_choose_list_rejects_bad_counts(counts):
    with pytest.raises(ValueError, match="counts must be a non-empty list"):
        choose_list(counts)


@pytest.mark.parametrize("n_lists", [2, 4])
def test_fewest_first_assignment_balances_every_identity_over_conditions(n_lists):
    identities = make_identities(10)
    counts = [0] * n_lists
    seen = defaultdict(Counter)  # identity -> condition -> participants
    for participant in range(8 * n_lists):
        list_index = choose_list(counts)
        counts[list_index] += 1
        specs = build_schedule(identities, ALL_TASKS, list_index, n_lists, seed=participant)
        shown = {(s.identity, s.condition) for s in regular(specs) if s.task in CONDITION_TASKS}
        for identity, condition in shown:
            seen[identity][condition] += 1
        per_condition = Counter(condition for _, condition in shown)
        assert per_condition == {"real": 5, "ai": 5}
    assert counts == [8] * n_lists
    assert {code: dict(c) for code, c in seen.items()} == {
        i.code: {"real": 4 * n_lists, "ai": 4 * n_lists} for i in identities
    }


@pytest.mark.parametrize(("list_index", "seed"), [(0, 1), (1, 2), (0, 99), (1, 12345)])
def test_each_identity_keeps_one_condition_across_match_rate_detect(list_index, seed):
    identities = make_identities(9)
    blocks = ALL_TASKS + [BlockInfo("second rating", "rate", {"attention_checks": 3})]
    specs = build_schedule(identities, blocks, list_index, 2, seed)
    conditions = defaultdict(set)
    for s in specs:  # practice and checks included: they show a person too
        if s.task in CONDITION_TASKS:
            conditions[s.identity].add(s.condition)
    expected = list_conditions(identities, list_index, 2)
    assert {code: conds for code, conds in conditions.items()} == {
        code: {cond} for code, cond in expected.items()
    }


def test_choose_blocks_run_after_the_others_in_order_otherwise_kept():
    blocks = [
        BlockInfo("pairs 1", "choose", {}),
        BlockInfo("rating", "rate", {}),
        BlockInfo("pairs 2", "choose", {}),
        BlockInfo("recognition", "match", {}),
    ]
    specs = build_schedule(make_identities(4), blocks, 0, 2, seed=7)
    running = list(dict.fromkeys(s.block for s in specs))
    assert running == ["rating", "recognition", "pairs 1", "pairs 2"]
    assert [s.position for s in specs] == list(range(1, len(specs) + 1))


def test_choose_only_study_runs_with_one_list():
    specs = build_schedule(make_identities(3), [BlockInfo("pairs", "choose", {})], 0, 1, seed=3)
    assert len(regular(specs)) == 3
    assert all(s.condition is None and s.other_image for s in specs)


# --- match ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_match_shows_half_own_probes_half_foils_per_condition(seed):
    specs = build_schedule(make_identities(8), ALL_TASKS, seed % 2, 2, seed)
    match = [s for s in regular(specs) if s.task == "match"]
    assert Counter((s.condition, s.is_match) for s in match) == {
        ("real", True): 2,
        ("real", False): 2,
        ("ai", True): 2,
        ("ai", False): 2,
    }
    for s in match:
        assert (s.probe_identity == s.identity) is s.is_match
        assert s.probe_image.startswith(f"probe-{int(s.probe_identity[1:])}")


@pytest.mark.parametrize("seed", range(6))
def test_match_odd_counts_split_the_extra_trial_between_conditions(seed):
    specs = build_schedule(make_identities(6), ALL_TASKS, 0, 2, seed)
    match = [s for s in regular(specs) if s.task == "match"]
    per_condition = Counter((s.condition, s.is_match) for s in match)
    # Three identities per condition: 2 + 1 in one, 1 + 2 in the other, 3 + 3 in the block.
    assert sorted(per_condition[(c, True)] for c in ("real", "ai")) == [1, 2]
    assert Counter(s.is_match for s in match) == {True: 3, False: 3}


@pytest.mark.parametrize("seed", range(6))
def test_foils_use_other_probes_once_and_avoid_probes_shown_as_matches(seed):
    specs = build_schedule(make_identities(10), ALL_TASKS, 1, 2, seed)
    match = [s for s in regular(specs) if s.task == "match"]
    matched = {s.identity for s in match if s.is_match}
    foils = [s for s in match if not s.is_match]
    assert all(s.probe_identity != s.identity for s in foils)
    assert max(Counter(s.probe_identity for s in foils).values()) == 1
    assert not matched & {s.probe_identity for s in foils}


@pytest.mark.parametrize("seed", range(8))
def test_foils_come_from_the_same_gender_and_age_band(seed):
    strata = [("f", "18-29"), ("f", "50+"), ("m", "18-29"), ("m", "50+")]
    identities = make_identities(16, [strata[k % 4] for k in range(16)])
    descriptors = {i.code: (i.gender, i.age_band) for i in identities}
    specs = build_schedule(identities, ALL_TASKS, seed % 2, 2, seed)
    foils = [s for s in specs if s.task == "match" and s.is_match is False]
    assert len(foils) >= 8
    assert all(descriptors[s.probe_identity] == descriptors[s.identity] for s in foils)


@pytest.mark.parametrize("seed", range(8))
def test_foils_keep_the_gender_when_the_age_band_cannot_match(seed):
    # One woman over 50: her foil must be another woman, of another age band.
    strata = [("f", "50+")] + [("f", "18-29")] * 3 + [("m", "50+")] * 4
    identities = make_identities(8, strata)
    descriptors = {i.code: (i.gender, i.age_band) for i in identities}
    specs = build_schedule(identities, ALL_TASKS, seed % 2, 2, seed)
    for s in specs:
        if s.task == "match" and s.is_match is False:
            mine, theirs = descriptors[s.identity], descriptors[s.probe_identity]
            assert mine[0] == theirs[0]
            assert mine[1] == theirs[1] or "P001" in (s.identity, s.probe_identity)


def test_too_few_foil_candidates_is_a_clear_error():
    lone = make_identities(1)
    with pytest.raises(
        ValueError,
        match=re.escape("too few foil candidates: 1 foil trial(s) need at least 2 identities"),
    ):
        design._assign_foils(lone, lone, frozenset(), random.Random(1))


# --- choose --------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "real_left"), [(8, {4}), (7, {3, 4})])
def test_choose_puts_the_real_headshot_left_in_half_the_trials(n, real_left):
    identities = make_identities(n)
    by_code = {i.code: i for i in identities}
    sides = set()
    for seed in range(10):
        specs = build_schedule(identities, [BlockInfo("pairs", "choose", {})], 0, 1, seed)
        trials = regular(specs)
        assert sorted(s.identity for s in trials) == sorted(by_code)
        for s in trials:
            right = "ai" if s.left_source == "real" else "real"
            assert s.image == by_code[s.identity].headshots[s.left_source]
            assert s.other_image == by_code[s.identity].headshots[right]
        sides.add(sum(s.left_source == "real" for s in trials))
    assert sides == real_left


# --- practice, attention checks, caps ------------------------------------------------------


def test_practice_opens_the_first_block_only_by_default():
    specs = build_schedule(make_identities(4), ALL_TASKS, 0, 2, seed=5)
    practice = [s for s in specs if s.is_practice]
    assert [(p.position, p.block) for p in practice] == [(1, "recognition")]
    assert practice[0].condition == list_conditions(make_identities(4), 0, 2)[practice[0].identity]
    assert len(regular(specs, "recognition")) == 4


def test_practice_follows_the_block_setting():
    blocks = [
        BlockInfo("recognition", "match", {"practice": False}),
        BlockInfo("impressions", "rate", {"practice": True}),
    ]
    specs = build_schedule(make_identities(4), blocks, 0, 2, seed=5)
    practice = [(s.block, s.position) for s in specs if s.is_practice]
    assert practice == [("impressions", 5)]


@pytest.mark.parametrize(
    ("task", "settings", "answers"),
    [
        ("match", {}, {"0", "1"}),
        ("detect", {}, {"real", "ai"}),
        ("choose", {}, {"left", "right"}),
        (
            "rate",
            {"scales": [{"key": "warmth", "question": "How warm?", "min": 0, "max": 3}]},
            {"0", "1", "2", "3"},
        ),
    ],
)
def test_attention_checks_sit_at_configured_positions_with_instructed_answers(
    task, settings, answers
):
    block = BlockInfo("block", task, {**settings, "attention_checks": [2, 5, 10]})
    given = set()
    for seed in range(12):
        specs = build_schedule(make_identities(8), [block], 0, 2, seed)
        assert specs[0].is_practice and not specs[0].is_attention
        after_practice = specs[1:]
        checks = [k for k, s in enumerate(after_practice, start=1) if s.is_attention]
        assert checks == [2, 5, 10]
        assert len(after_practice) == 8 + 3
        given |= {after_practice[k - 1].attention_answer for k in checks}
        assert all(s.attention_answer is None for s in specs if not s.is_attention)
    assert given == answers


def test_attention_check_count_is_spread_evenly():
    block = BlockInfo("impressions", "rate", {"attention_checks": 3, "practice": False})
    specs = build_schedule(make_identities(8), [block], 0, 2, seed=1)
    assert [s.position for s in specs if s.is_attention] == [3, 6, 9]


def test_match_checks_and_practice_show_a_foil_in_the_identity_condition():
    identities = make_identities(8)
    block = BlockInfo("recognition", "match", {"attention_checks": 4})
    conditions = list_conditions(identities, 1, 2)
    for seed in range(10):
        specs = build_schedule(identities, [block], 1, 2, seed)
        for s in specs:
            if s.is_practice or s.is_attention:
                assert s.is_match is False and s.probe_identity != s.identity
                assert s.condition == conditions[s.identity]


def test_identity_cap_draws_evenly_from_conditions_and_extras_use_the_rest():
    identities = make_identities(10)
    block = BlockInfo("impressions", "rate", {"n_identities": 4, "attention_checks": [1]})
    for seed in range(10):
        specs = build_schedule(identities, [block], 0, 2, seed)
        shown = regular(specs)
        assert Counter(s.condition for s in shown) == {"real": 2, "ai": 2}
        extras = {s.identity for s in specs if s.is_practice or s.is_attention}
        assert not extras & {s.identity for s in shown}


# --- reproducibility -------------------------------------------------------------------------


def test_schedule_regenerates_identically_whatever_the_input_order():
    identities = make_identities(8, [("f", "a"), ("m", "b")] * 4)
    blocks = ALL_TASKS + [BlockInfo("checks", "detect", {"attention_checks": 2})]
    first = build_schedule(identities, blocks, 1, 2, seed=2024)
    shuffled = [
        IdentityInfo(
            code=i.code,
            gender=i.gender,
            age_band=i.age_band,
            headshots=dict(reversed(list(i.headshots.items()))),
            probes=tuple(reversed(i.probes)),
        )
        for i in reversed(identities)
    ]
    again = build_schedule(shuffled, blocks, 1, 2, seed=2024)
    assert again == first
    assert schedule_fingerprint(again) == schedule_fingerprint(first)


def test_other_seeds_and_lists_give_other_schedules():
    identities = make_identities(8)
    prints = {
        schedule_fingerprint(build_schedule(identities, ALL_TASKS, 0, 2, s)) for s in range(20)
    }
    assert len(prints) == 20
    other_list = build_schedule(identities, ALL_TASKS, 1, 2, seed=0)
    assert schedule_fingerprint(other_list) not in prints


def test_fingerprint_of_a_known_schedule_is_pinned():
    # Stored schedules are audited by rebuilding them from their seed: a change of algorithm
    # that alters this value breaks the audit of every schedule already stored.
    blocks = [
        BlockInfo("recognition", "match", {"attention_checks": [2]}),
        BlockInfo("impressions", "rate", {"n_identities": 4, "attention_checks": 1}),
        BlockInfo("pairs", "choose", {"attention_checks": [1]}),
        BlockInfo("detection", "detect", {"practice": True}),
    ]
    identities = make_identities(6, [("f", "a"), ("m", "b")] * 3)
    specs = build_schedule(identities, blocks, 1, 2, seed=42)
    assert schedule_fingerprint(specs) == (
        "1d1ecc1f086a06128cbc6a4b41eee5f414e5ece75bbabbbad0568888911e7da9"
    )


def test_fingerprint_depends_on_every_field():
    specs = build_schedule(make_identities(4), ALL_TASKS, 0, 2, seed=1)
    changed = list(specs)
    changed[3] = dataclasses.replace(changed[3], attention_answer="x")
    assert schedule_fingerprint(changed) != schedule_fingerprint(specs)


# --- settings ------------------------------------------------------------------------------


def test_settings_defaults_per_task():
    assert validate_block_settings("match", {}) == {
        "attention_checks": [],
        "practice": None,
        "n_identities": None,
        "presentation": "side_by_side",
        "exposure_ms": 1500,
        "fixation_ms": 0,
        "mask_ms": 0,
        "isi_ms": 0,
        "confidence": True,
        "instructions": "",
        "break_every": None,
    }
    rate = validate_block_settings("rate", None)
    assert rate["scales"] == [
        {
            "key": "trust",
            "question": "How much do you trust this person?",
            "low_anchor": "Not at all",
            "high_anchor": "Completely",
            "min": 1,
            "max": 7,
        }
    ]
    assert validate_block_settings("choose", {})["question"] == "Which photo do you trust more?"
    assert validate_block_settings("detect", {"attention_checks": (5, 2)}) == {
        "attention_checks": [2, 5],
        "practice": None,
        "n_identities": None,
        "confidence": True,
        "instructions": "",
        "break_every": None,
    }


def test_settings_are_copied_not_shared():
    raw = {"scales": [{"key": "warmth", "question": "How warm?"}]}
    out = validate_block_settings("rate", raw)
    out["scales"][0]["max"] = 99
    assert raw == {"scales": [{"key": "warmth", "question": "How warm?"}]}
    assert validate_block_settings("rate", {})["scales"][0]["max"] == 7


@pytest.mark.parametrize(
    ("task", "settings", "message"),
    [
        (
            "survey",
            {},
            "task must be one of match, rate, choose, detect, learn, recognise, got 'survey'",
        ),
        ("rate", [], "settings must be a mapping, got []"),
        ("rate", {"colour": 1}, "unknown setting 'colour' for a rate block"),
        ("detect", {"presentation": "sequential"}, "unknown setting 'presentation'"),
        ("match", {"presentation": "fast"},
         "presentation must be one of side_by_side, sequential, got 'fast'"),
        ("match", {"exposure_ms": 150},
         "exposure_ms must be an integer from 200 to 10000, got 150"),
        ("match", {"exposure_ms": "1500"},
         "exposure_ms must be an integer from 200 to 10000, got '1500'"),
        ("match", {"confidence": "yes"}, "confidence must be true or false, got 'yes'"),
        ("detect", {"confidence": 1}, "confidence must be true or false, got 1"),
        ("rate", {"practice": "no"}, "practice must be true or false, got 'no'"),
        ("rate", {"attention_checks": -1}, "attention_checks must be a count of 0 or more, got -1"),
        ("rate", {"attention_checks": "3"},
         "attention_checks must be a count or a list of 1-based positions, got '3'"),
        ("rate", {"attention_checks": [0, 4]}, "attention_checks positions start at 1, got 0"),
        ("rate", {"attention_checks": [4, 2, 4]},
         "attention_checks lists position 4 more than once"),
        ("rate", {"n_identities": 3}, "n_identities must be an integer of at least 4, got 3"),
        ("choose", {"n_identities": 1}, "n_identities must be an integer of at least 2, got 1"),
        ("choose", {"question": "  "}, "question must be non-empty text, got '  '"),
        ("rate", {"scales": []}, "scales must be a non-empty list of scales, got []"),
        ("rate", {"scales": ["trust"]}, "scales[0] must be a mapping of key, question"),
        ("rate", {"scales": [{"key": "Trust", "question": "q"}]},
         "scales[0].key must be a snake_case name of at most 32 characters, got 'Trust'"),
        ("rate", {"scales": [{"key": "a" * 33, "question": "q"}]},
         "scales[0].key must be a snake_case name"),
        ("rate", {"scales": [{"key": "confidence", "question": "q"}]},
         "scales[0].key 'confidence' is reserved"),
        ("rate", {"scales": [{"key": "warmth"}]},
         "scales[0].question must be non-empty text, got None"),
        ("rate", {"scales": [{"key": "warmth", "question": "q", "colour": "red"}]},
         "scales[0] has an unknown field 'colour'"),
        ("rate", {"scales": [{"key": "warmth", "question": "q", "min": 5, "max": 5}]},
         "scales[0] must run from min to a larger max with at most 101 points, got 5..5"),
        ("rate", {"scales": [{"key": "warmth", "question": "q", "max": 7.5}]},
         "scales[0].max must be an integer from -1000 to 1000, got 7.5"),
        ("rate", {"scales": [{"key": "warmth", "question": "q", "min": -1001}]},
         "scales[0].min must be an integer from -1000 to 1000, got -1001"),
        ("rate", {"scales": [{"key": "warmth", "question": "q", "low_anchor": 1}]},
         "scales[0].low_anchor must be text, got 1"),
        ("rate",
         {"scales": [{"key": "warmth", "question": "q"}, {"key": "warmth", "question": "r"}]},
         "scales use the key 'warmth' more than once"),
    ],
)  # fmt: skip
def test_bad_settings_are_rejected_by_name_and_value(task, settings, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        validate_block_settings(task, settings)


# --- design checks -------------------------------------------------------------------------


def replace_identity(identities: list[IdentityInfo], code: str, **changes) -> list[IdentityInfo]:
    """Return the identities with one of them changed."""
    return [dataclasses.replace(i, **changes) if i.code == code else i for i in identities]


@pytest.mark.parametrize(
    ("identities", "blocks", "n_lists", "problems"),
    [
        (make_identities(4), ALL_TASKS, 2, []),
        (make_identities(4), ALL_TASKS, 4, []),
        (
            replace_identity(make_identities(4), "P002", headshots={"real": "real-2"}),
            ALL_TASKS,
            2,
            ["Identity P002 has no ai headshot."],
        ),
        (
            replace_identity(make_identities(4), "P002", headshots={"real": "", "ai": None}),
            [BlockInfo("rating", "rate", {})],
            2,
            ["Identity P002 has no real headshot.", "Identity P002 has no ai headshot."],
        ),
        (
            replace_identity(
                make_identities(4), "P002", headshots={"real": "r", "ai": "a", "cgi": "c"}
            ),
            [BlockInfo("rating", "rate", {})],
            2,
            [
                "Identity P002 has a headshot of unknown source 'cgi'"
                " (the sources are real and ai)."
            ],
        ),
        (
            replace_identity(
                replace_identity(make_identities(4), "P003", probes=()), "P001", probes=()
            ),
            ALL_TASKS,
            2,
            [
                "Block 'recognition' is a match task,"
                " but these identities have no probe photo: P001, P003."
            ],
        ),
        (
            replace_identity(make_identities(4), "P003", probes=()),
            [BlockInfo("rating", "rate", {})],
            2,
            [],
        ),
        (
            make_identities(3),
            ALL_TASKS,
            2,
            [
                "The study has 3 identities; match, rate and detect blocks need at least 4,"
                " 2 in each condition of each list."
            ],
        ),
        (
            make_identities(1),
            [BlockInfo("pairs", "choose", {})],
            1,
            ["The study has 1 identity; choose blocks need at least 2."],
        ),
        (
            make_identities(4),
            ALL_TASKS,
            3,
            [
                "The study has 3 lists; match, rate and detect blocks need a multiple of 2,"
                " one list per row of the real/ai Latin square."
            ],
        ),
        (make_identities(4), [BlockInfo("pairs", "choose", {})], 3, []),
        (
            make_identities(4),
            ALL_TASKS,
            0,
            ["The number of lists must be a whole number of at least 1, got 0."],
        ),
        (make_identities(4), [], 2, ["The study has no blocks."]),
        (
            make_identities(4) + make_identities(1),
            [BlockInfo("rating", "rate", {})],
            2,
            [
                "Identity code P001 is used 2 times.",
                "Image 'probe-1a' is used more than once (P001 probe, P001 probe).",
                "Image 'probe-1b' is used more than once (P001 probe, P001 probe).",
                "Image 'real-1' is used more than once (P001 real headshot, P001 real headshot).",
                "Image 'ai-1' is used more than once (P001 ai headshot, P001 ai headshot).",
            ],
        ),
        (
            replace_identity(make_identities(4), "P004", probes=("real-1",)),
            [BlockInfo("rating", "rate", {})],
            2,
            ["Image 'real-1' is used more than once (P001 real headshot, P004 probe)."],
        ),
        (
            make_identities(4),
            [
                BlockInfo("rating", "rate", {}),
                BlockInfo("rating", "detect", {}),
                BlockInfo("", "rate", {}),
            ],
            2,
            ["A block has no name.", "Block name 'rating' is used 2 times."],
        ),
        (
            make_identities(4),
            [BlockInfo("odd", "survey", {}), BlockInfo("rating", "rate", {"exposure_ms": 500})],
            2,
            [
                "Block 'odd': Choose one of the tasks match, rate, choose, detect, learn,"
                " recognise; you wrote 'survey'.",
                "Block 'rating': A rate block has no exposure setting (only match and learn"
                " blocks have one).",
            ],
        ),
        (
            make_identities(4),
            [
                BlockInfo("rating", "rate", {"attention_checks": [2, 7]}),
                BlockInfo("det", "detect", {"attention_checks": 5}),
            ],
            2,
            [
                "Block 'rating' has an attention check at position 7,"
                " past its end (6 trials with the checks).",
                "Block 'det' asks for 5 attention checks but shows only 4 identities.",
            ],
        ),
    ],
)  # fmt: skip
def test_check_design_names_every_problem(identities, blocks, n_lists, problems):
    assert sorted(check_design(identities, blocks, n_lists)) == sorted(problems)


def test_a_scale_rated_in_two_blocks_needs_one_range():
    """Found by the property test: trust 10-11 in one block and 1-5 in another passed the design
    check, and the report then failed on the answers. The design check now names it."""
    trust = {"key": "trust", "question": "How much do you trust this person?"}
    blocks = [
        BlockInfo("first", "rate", {"scales": [{**trust, "min": 10, "max": 11}]}),
        BlockInfo("second", "rate", {"scales": [{**trust, "min": 1, "max": 5}]}),
        BlockInfo("third", "rate", {"scales": [{**trust, "min": 10, "max": 11}]}),
    ]
    assert check_design(make_identities(4), blocks, 2) == [
        "Rating scale 'trust' runs from 10 to 11 in block 'first' but from 1 to 5 in block "
        "'second': a scale rated in several blocks needs one range, so that its answers can be "
        "analysed together."
    ]
    same = [blocks[0], blocks[2]]
    assert check_design(make_identities(4), same, 2) == []


def test_build_schedule_raises_the_same_messages():
    identities = replace_identity(make_identities(3), "P002", headshots={"real": "real-2"})
    expected = check_design(identities, ALL_TASKS, 3)
    assert len(expected) == 3
    with pytest.raises(DesignError) as caught:
        build_schedule(identities, ALL_TASKS, 0, 3, seed=1)
    assert caught.value.problems == expected
    assert all(p in str(caught.value) for p in expected)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("list_index", "seed", "message"),
    [
        (2, 1, "list_index must be from 0 to 1, got 2"),
        (-1, 1, "list_index must be from 0 to 1, got -1"),
        (0, "1", "seed must be an integer, got '1'"),
    ],
)
def test_build_schedule_rejects_bad_list_or_seed(list_index, seed, message):
    with pytest.raises(ValueError, match=message):
        build_schedule(make_identities(4), ALL_TASKS, list_index, 2, seed)
