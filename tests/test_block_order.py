"""Block order modes: fixed, random per participant, counterbalanced over participants by a
balanced Latin square; choose blocks always after the others."""

from __future__ import annotations

from collections import Counter

import pytest

from survey.design import BlockInfo, balanced_latin_square, block_order, build_schedule
from tests.helpers import make_identities

BLOCKS = [
    BlockInfo("pairs 1", "choose", {}),
    BlockInfo("recognition", "match", {}),
    BlockInfo("rating", "rate", {}),
    BlockInfo("pairs 2", "choose", {}),
    BlockInfo("detection", "detect", {}),
    BlockInfo("warmth", "rate", {"scales": [{"key": "warmth", "question": "How warm?"}]}),
]
NOT_CHOOSE = {"recognition", "rating", "detection", "warmth"}


def names(blocks) -> list[str]:
    return [b.name for b in blocks]


@pytest.mark.parametrize("n", range(1, 8))
def test_the_square_puts_each_item_in_each_position_once_per_cycle(n):
    rows = balanced_latin_square(n)
    assert len(rows) == (n if n % 2 == 0 else 2 * n)
    assert all(sorted(row) == list(range(n)) for row in rows)
    for start in range(0, len(rows), n):
        cycle = rows[start : start + n]
        for position in range(n):
            assert sorted(row[position] for row in cycle) == list(range(n))


@pytest.mark.parametrize("n", range(2, 8))
def test_the_square_balances_which_item_follows_which(n):
    rows = balanced_latin_square(n)
    pairs = Counter((row[i], row[i + 1]) for row in rows for i in range(n - 1))
    # Every ordered pair of different items is neighbours equally often (once; twice when odd).
    assert set(pairs) == {(a, b) for a in range(n) for b in range(n) if a != b}
    assert set(pairs.values()) == {1 if n % 2 == 0 else 2}


def test_the_first_row_is_the_classic_williams_sequence():
    assert balanced_latin_square(4) == [[0, 1, 3, 2], [1, 2, 0, 3], [2, 3, 1, 0], [3, 0, 2, 1]]


def test_fixed_keeps_the_configured_order_with_choose_last():
    order, row = block_order(BLOCKS, "fixed", seed=1, start_index=5)
    assert names(order) == ["recognition", "rating", "detection", "warmth", "pairs 1", "pairs 2"]
    assert row is None


def test_random_shuffles_per_seed_keeps_choose_last_and_repeats_for_the_same_seed():
    seen = set()
    for seed in range(40):
        order, row = block_order(BLOCKS, "random", seed=seed)
        assert row is None
        assert set(names(order[:4])) == NOT_CHOOSE
        assert set(names(order[4:])) == {"pairs 1", "pairs 2"}
        assert names(block_order(BLOCKS, "random", seed=seed)[0]) == names(order)
        seen.add(tuple(names(order)))
    assert len(seen) > 20  # 48 orders possible


def test_counterbalanced_deals_the_square_rows_in_start_order():
    orders = [block_order(BLOCKS, "counterbalanced", seed=9, start_index=k) for k in range(8)]
    # 4 blocks before the choose blocks (4 rows) and 2 choose blocks (2 rows): a cycle of 4.
    assert [row for _, row in orders] == [0, 1, 2, 3, 0, 1, 2, 3]
    firsts = [names(order)[:4] for order, _ in orders[:4]]
    for position in range(4):
        assert {f[position] for f in firsts} == NOT_CHOOSE
    assert all(set(names(order)[4:]) == {"pairs 1", "pairs 2"} for order, _ in orders)
    assert {names(order)[4] for order, _ in orders[:2]} == {"pairs 1", "pairs 2"}
    # The seed plays no part: the start order alone decides.
    assert block_order(BLOCKS, "counterbalanced", seed=1, start_index=6) == orders[6]


def test_counterbalanced_with_an_odd_count_cycles_over_twice_the_rows():
    three = [b for b in BLOCKS if b.name in ("recognition", "rating", "detection")]
    rows = [block_order(three, "counterbalanced", start_index=k)[1] for k in range(7)]
    assert rows == [0, 1, 2, 3, 4, 5, 0]


@pytest.mark.parametrize(
    "mode, start, message",
    [
        ("shuffled", 0, "block order must be one of fixed, random, counterbalanced"),
        ("counterbalanced", -1, "start_index must be a whole number of 0 or more"),
        ("counterbalanced", 1.5, "start_index must be a whole number of 0 or more"),
    ],
)
def test_bad_modes_and_start_indexes_are_refused_in_words(mode, start, message):
    with pytest.raises(ValueError, match=message):
        block_order(BLOCKS, mode, start_index=start)


def test_the_schedule_runs_the_blocks_in_the_order_given():
    blocks = [b for b in BLOCKS if b.name in ("recognition", "rating", "pairs 1")]
    for k in range(2):
        specs = build_schedule(
            make_identities(4), blocks, 0, 2, seed=7, order="counterbalanced", start_index=k
        )
        running = list(dict.fromkeys(s.block for s in specs))
        assert running == names(block_order(blocks, "counterbalanced", start_index=k)[0])
        # Practice opens whichever block runs first.
        assert specs[0].is_practice and specs[0].block == running[0]
    fixed = build_schedule(make_identities(4), blocks, 0, 2, seed=7)
    assert list(dict.fromkeys(s.block for s in fixed)) == ["recognition", "rating", "pairs 1"]
