"""The checks behind the load and fault benchmarks: what participants were told against the rows."""

from __future__ import annotations

import math

import pytest
import sqlalchemy as sa

from bench.checks import (
    answer_problems,
    as_measures,
    balance_problems,
    database_problems,
    gap_problems,
    next_positions,
    read_facts,
)
from bench.load import Ledger
from bench.report import latency_table, peak_rate, percentile
from survey.extensions import db
from survey.participant.simulate import simulate


def test_every_acknowledged_answer_stored_once_passes():
    acknowledged = {1: {"same": "1", "confidence": "4"}, 2: {"trust": "6"}}
    stored = [(1, "same", "1"), (1, "confidence", "4"), (2, "trust", "6")]
    assert answer_problems(acknowledged, {}, stored) == []


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ([(1, "same", "1")], "1 acknowledged answers not stored (trials 2)"),
        (
            [(1, "same", "1"), (2, "trust", "5")],
            "1 answers stored with other measures or values than posted (trials 2)",
        ),
        (
            [(1, "same", "1"), (2, "trust", "6"), (2, "trust", "6")],
            "1 (trial, measure) pairs stored more than once (trials 2)",
        ),
        (
            [(1, "same", "1"), (2, "trust", "6"), (3, "trust", "2")],
            "1 answers stored that no participant sent (trials 3)",
        ),
        (
            [(1, "same", "1"), (1, "confidence", "2"), (2, "trust", "6")],
            "1 answers stored with other measures or values than posted (trials 1)",
        ),
    ],
)
def test_each_kind_of_lost_or_extra_answer_is_named(stored, expected):
    acknowledged = {1: {"same": "1"}, 2: {"trust": "6"}}
    assert answer_problems(acknowledged, {}, stored) == [expected]


def test_an_answer_in_doubt_may_be_stored_once_or_not_at_all():
    in_doubt = {7: {"source": "ai"}, 8: {"source": "real"}}
    assert answer_problems({}, in_doubt, [(7, "source", "ai")]) == []
    assert answer_problems({}, in_doubt, [(7, "source", "ai"), (7, "source", "ai")]) == [
        "1 (trial, measure) pairs stored more than once (trials 7)"
    ]
    assert answer_problems({}, in_doubt, [(8, "source", "ai")]) == [
        "1 unacknowledged answers stored with other values than posted (trials 8)"
    ]


def test_long_lists_of_trials_are_cut_short_in_messages():
    acknowledged = {t: {"trust": "1"} for t in range(1, 9)}
    (message,) = answer_problems(acknowledged, {}, [])
    assert message == "8 acknowledged answers not stored (trials 1, 2, 3, 4, 5 … and 3 more)"


@pytest.mark.parametrize(
    ("posted", "left_source", "expected"),
    [
        (
            {"scale_trust": "5", "scale_professional": "2"},
            None,
            {"trust": "5", "professional": "2"},
        ),
        ({"same": "0", "confidence": "3"}, None, {"same": "0", "confidence": "3"}),
        ({"choice": "left"}, "real", {"choice": "real"}),
        ({"choice": "right"}, "real", {"choice": "ai"}),
        ({"choice": "left"}, "ai", {"choice": "ai"}),
        ({"attention": "2"}, None, {"attention": "2"}),
    ],
)
def test_posted_fields_become_the_stored_measures(posted, left_source, expected):
    assert as_measures(posted, left_source) == expected


@pytest.mark.parametrize(
    ("counts", "n_lists", "slack", "problems"),
    [
        ({0: 5, 1: 5}, 2, 0, []),
        ({0: 6, 1: 5}, 2, 0, []),
        ({0: 7, 1: 5}, 2, 0, ["lists unbalanced: [7, 5] participants per list"]),
        ({0: 7, 1: 5}, 2, 1, []),
        ({0: 3}, 2, 0, ["lists unbalanced: [3, 0] participants per list"]),
        ({0: 1, 1: 1, 2: 1}, 2, 0, ["participants on lists that do not exist: [2]"]),
    ],
)
def test_lists_must_stay_within_one_participant(counts, n_lists, slack, problems):
    assert balance_problems(counts, n_lists, slack) == problems


def test_answered_positions_must_have_no_gap():
    assert gap_problems({1: [1, 2, 3], 2: [2, 1], 3: []}) == []
    assert gap_problems({1: [1, 2, 3], 2: [1, 3], 4: [2]}) == [
        "2 participants with an unanswered trial before an answered one (participants 2, 4)"
    ]


@pytest.mark.parametrize(
    ("last", "doubtful", "allowed"),
    [
        (0, [], {1}),
        (3, [], {4}),
        (3, [4], {4, 5}),
        (3, [4, 5], {4, 5, 6}),
        (3, [6], {4}),
        (3, [2, 3], {4}),
    ],
)
def test_a_resumed_participant_sees_the_trial_after_the_last_saved_answer(last, doubtful, allowed):
    assert next_positions(last, doubtful) == allowed


def test_percentiles_by_nearest_rank():
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_latency_table_has_each_kind_and_all_requests():
    table = latency_table({"answer": [10.0, 20.0], "trial page": [1.0, 2.0, 3.0, 4.0]})
    assert table["answer"] == {"n": 2, "p50_ms": 10.0, "p99_ms": 20.0, "max_ms": 20.0}
    assert table["all requests"]["n"] == 6
    assert table["all requests"]["p50_ms"] == 3.0


def test_peak_rate_counts_the_busiest_window():
    times = [0.0, 0.5, 1.0, 20.0, 20.1, 20.2, 20.3, 29.9]
    assert peak_rate(times, window=10.0) == pytest.approx(0.5)
    assert peak_rate([], window=10.0) == 0.0


# --- the database side, on SQLite and PostgreSQL ------------------------------------------------


def _ledger_from_rows(facts) -> Ledger:
    """Return a ledger whose acknowledged answers are the stored rows, as their forms posted."""
    ledger = Ledger()
    for trial_id, measure, value in facts.stored:
        if measure == "choice":
            name, value = "choice", "left" if value == facts.left_sources[trial_id] else "right"
        elif measure in ("same", "confidence", "source", "attention"):
            name = measure
        else:
            name = f"scale_{measure}"
        ledger.acknowledged.setdefault(trial_id, {})[name] = value
    return ledger


@pytest.fixture
def simulated(app, demo, database_url):
    """The demo study after six simulated participants; return the database URL."""
    simulate(app, "demo", 6, seed=4)
    return database_url


def test_a_clean_run_passes_every_database_check(simulated):
    facts = read_facts(simulated)
    assert len(facts.stored) > 100
    assert sum(facts.list_counts.values()) == 6
    assert not any(facts.orphans.values())
    assert database_problems(facts, _ledger_from_rows(facts)) == []


def test_the_database_checks_find_planted_faults(app, simulated):
    facts = read_facts(simulated)
    ledger = _ledger_from_rows(facts)
    skipper, loser = sorted(facts.answered, key=lambda p: len(facts.answered[p]))[-2:]
    with app.app_context():
        lost = db.session.scalar(
            sa.text("SELECT id FROM trial WHERE participant_id = :p AND position = 1"), {"p": loser}
        )
        skipped = db.session.scalar(
            sa.text("SELECT id FROM trial WHERE participant_id = :p AND position = 2"),
            {"p": skipper},
        )
        left_behind = db.session.scalar(
            sa.text("SELECT count(*) FROM response WHERE trial_id = :t"), {"t": skipped}
        )
        skipper_status = db.session.scalar(
            sa.text("SELECT status FROM participant WHERE id = :p"), {"p": skipper}
        )
        # An answer lost; a trial no longer marked answered (a gap before later answers) whose
        # responses stay behind.
        db.session.execute(sa.text("DELETE FROM response WHERE trial_id = :t"), {"t": lost})
        db.session.execute(
            sa.text("UPDATE trial SET answered_at = NULL WHERE id = :t"), {"t": skipped}
        )
        db.session.commit()
    problems = database_problems(read_facts(simulated), ledger)
    assert problems == [
        f"1 acknowledged answers not stored (trials {lost})",
        f"1 participants with an unanswered trial before an answered one (participants {skipper})",
        f"{left_behind} responses to trials not marked answered",
        "1 trials marked answered without a response",
    ] + (
        ["1 completed participants with unanswered trials"] if skipper_status == "completed" else []
    )


def test_the_load_generators_client_reads_headers_cookies_bodies_and_reconnects():
    """The benchmarks' HTTP client against a small server on 127.0.0.1: a sized body with
    cookies set for two paths, a chunked body, and a kept-alive socket the server closed."""
    import asyncio

    from bench.load import Client

    requests: list[bytes] = []

    async def serve(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        requests.append(head)
        path = head.split(b" ")[1]
        if path == b"/sized":
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                b"Set-Cookie: a=1; Path=/s/demo; HttpOnly\r\nSet-Cookie: b=2\r\n\r\nhello"
            )
        else:
            writer.write(
                b"HTTP/1.1 303 See Other\r\nLocation: /next\r\nTransfer-Encoding: chunked\r\n"
                b"Connection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
            )
        await writer.drain()
        writer.close()  # every connection serves one response: the client must reconnect

    async def run():
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = Client("127.0.0.1", port)
        try:
            first = await asyncio.wait_for(client.request("GET", "/sized"), 5)
            # The server closed the socket after its response: the kept one is dead.
            second = await asyncio.wait_for(client.request("GET", "/s/demo/trial"), 5)
            third = await asyncio.wait_for(client.request("POST", "/other", {"k": "v w"}), 5)
        finally:
            await client.close()
            server.close()
            await server.wait_closed()
        return first, second, third

    first, second, third = asyncio.run(run())
    assert (first.status, first.body) == (200, b"hello")
    assert first.headers["content-length"] == "5"
    assert (second.status, second.headers["location"], second.body) == (303, "/next", b"abcde")
    assert third.body == b"abcde"
    # Cookies go back by path: both to the study's pages, only the site-wide one elsewhere.
    assert b"Cookie: b=2; a=1" in requests[1] or b"Cookie: a=1; b=2" in requests[1]
    assert b"Cookie: b=2\r\n" in requests[2]
