"""The database check every load run ends with: what participants were told against the rows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from bench.db import SLUG

if TYPE_CHECKING:
    from bench.load import Ledger


def answer_problems(
    acknowledged: Mapping[int, Mapping[str, str]],
    in_doubt: Mapping[int, Mapping[str, str]],
    stored: Iterable[tuple[int, str, str]],
) -> list[str]:
    """Compare the answers participants were told were saved with the stored response rows.

    `acknowledged` maps a trial id to the measures posted for it when the server answered with
    its redirect to the next trial; `in_doubt` the same for answers whose request died or got a
    try-again page (they may be stored, once, or not at all). `stored` holds (trial id, measure,
    value) rows. Every acknowledged answer must be stored with exactly its measures and values,
    nothing may be stored twice, and nothing may be stored that no participant sent.
    """
    rows: dict[int, dict[str, str]] = {}
    twice: set[tuple[int, str]] = set()
    for trial_id, measure, value in stored:
        measures = rows.setdefault(trial_id, {})
        if measure in measures:
            twice.add((trial_id, measure))
        measures[measure] = value
    problems = []
    missing = [t for t in acknowledged if t not in rows]
    if missing:
        problems.append(f"{len(missing)} acknowledged answers not stored (trials {_few(missing)})")
    differ = [t for t in acknowledged if t in rows and dict(rows[t]) != dict(acknowledged[t])]
    if differ:
        problems.append(
            f"{len(differ)} answers stored with other measures or values than posted "
            f"(trials {_few(differ)})"
        )
    if twice:
        problems.append(
            f"{len(twice)} (trial, measure) pairs stored more than once "
            f"(trials {_few(sorted({t for t, _ in twice}))})"
        )
    unsent = [t for t in rows if t not in acknowledged and t not in in_doubt]
    if unsent:
        problems.append(
            f"{len(unsent)} answers stored that no participant sent (trials {_few(unsent)})"
        )
    doubtful = [
        t for t in rows if t not in acknowledged and t in in_doubt and rows[t] != dict(in_doubt[t])
    ]
    if doubtful:
        problems.append(
            f"{len(doubtful)} unacknowledged answers stored with other values than "
            f"posted (trials {_few(doubtful)})"
        )
    return problems


def as_measures(posted: Mapping[str, str], left_source: str | None) -> dict[str, str]:
    """Return an answer form's fields as the measures stored for it.

    A rating scale's field `scale_<key>` is stored as `<key>`; a choice of side (left, right) is
    stored as the source of the headshot on that side.
    """
    measures = {}
    for name, value in posted.items():
        if name == "choice":
            other = "ai" if left_source == "real" else "real"
            value = left_source if value == "left" else other
        measures[name.removeprefix("scale_")] = value
    return measures


def balance_problems(list_counts: Mapping[int, int], n_lists: int, slack: int = 0) -> list[str]:
    """Check that the fewest-first assignment left every list within one participant of the others.

    `slack` widens the margin by the participants who withdrew (their places are given again
    only to later starts, so the lists can end that much further apart).
    """
    counts = [list_counts.get(index, 0) for index in range(n_lists)]
    stray = sorted(set(list_counts) - set(range(n_lists)))
    problems = []
    if stray:
        problems.append(f"participants on lists that do not exist: {stray}")
    if counts and max(counts) - min(counts) > 1 + slack:
        problems.append(f"lists unbalanced: {counts} participants per list")
    return problems


def gap_problems(answered: Mapping[int, Sequence[int]]) -> list[str]:
    """Check that each participant's answered positions are 1..k: no trial skipped on resume."""
    gaps = [
        p
        for p, positions in answered.items()
        if sorted(positions) != list(range(1, len(positions) + 1))
    ]
    if gaps:
        names = _few(gaps)
        return [
            f"{len(gaps)} participants with an unanswered trial before an answered one "
            f"(participants {names})"
        ]
    return []


def next_positions(last_acknowledged: int, doubtful: Iterable[int]) -> set[int]:
    """Return the positions a resumed participant may be shown next.

    The trial after the last acknowledged one, or, when answers after it are in doubt (their
    request died), the trial after each of those that may have been stored in sequence.
    """
    allowed = {last_acknowledged + 1}
    position = last_acknowledged + 1
    pending = set(doubtful)
    while position in pending:
        position += 1
        allowed.add(position)
    return allowed


def _few(items: Sequence[Any], shown: int = 5) -> str:
    """Return the first few items of a list for a message."""
    items = list(items)
    more = f" … and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(str(i) for i in items[:shown]) + more


ORPHAN_QUERIES = {
    "responses whose trial is gone": (
        "SELECT count(*) FROM response r LEFT JOIN trial t ON t.id = r.trial_id WHERE t.id IS NULL"
    ),
    "responses filed under another participant than their trial's": (
        "SELECT count(*) FROM response r JOIN trial t ON t.id = r.trial_id "
        "WHERE r.participant_id <> t.participant_id"
    ),
    "responses to trials not marked answered": (
        "SELECT count(*) FROM response r JOIN trial t ON t.id = r.trial_id "
        "WHERE t.answered_at IS NULL"
    ),
    "trials marked answered without a response": (
        "SELECT count(*) FROM trial t WHERE t.answered_at IS NOT NULL "
        "AND NOT EXISTS (SELECT 1 FROM response r WHERE r.trial_id = t.id)"
    ),
    "trials whose participant is gone": (
        "SELECT count(*) FROM trial t LEFT JOIN participant p ON p.id = t.participant_id "
        "WHERE p.id IS NULL"
    ),
    "recruitment ids whose participant is gone": (
        "SELECT count(*) FROM recruitment_id x LEFT JOIN participant p ON p.id = x.participant_id "
        "WHERE p.id IS NULL"
    ),
    "participants started without a schedule": (
        "SELECT count(*) FROM participant p WHERE p.status <> 'withdrawn' "
        "AND NOT EXISTS (SELECT 1 FROM trial t WHERE t.participant_id = p.id)"
    ),
    "completed participants with unanswered trials": (
        "SELECT count(*) FROM participant p WHERE p.status = 'completed' "
        "AND EXISTS (SELECT 1 FROM trial t WHERE t.participant_id = p.id AND t.answered_at IS NULL)"
    ),
    "participants with every trial answered but not completed": (
        "SELECT count(*) FROM participant p WHERE p.status = 'in_progress' "
        "AND EXISTS (SELECT 1 FROM trial t WHERE t.participant_id = p.id) "
        "AND NOT EXISTS (SELECT 1 FROM trial t WHERE t.participant_id = p.id "
        "AND t.answered_at IS NULL)"
    ),
    "withdrawn participants with answers left": (
        "SELECT count(*) FROM participant p WHERE p.status = 'withdrawn' "
        "AND EXISTS (SELECT 1 FROM response r WHERE r.participant_id = p.id)"
    ),
}


@dataclass
class DatabaseFacts:
    """What the checks read from the database after a run (preview participants left out)."""

    stored: list[tuple[int, str, str]]
    list_counts: dict[int, int]
    n_lists: int
    answered: dict[int, list[int]]
    orphans: dict[str, int]
    statuses: dict[str, int]
    left_sources: dict[int, str]


def read_facts(url: str, slug: str = SLUG) -> DatabaseFacts:
    """Read the rows the checks need from the study's database."""
    from survey.config import database_uri

    engine = sa.create_engine(database_uri(url))
    try:
        with engine.connect() as conn:
            study_id, n_lists = conn.execute(
                sa.text("SELECT id, n_lists FROM study WHERE slug = :slug"), {"slug": slug}
            ).one()
            people = "SELECT id FROM participant WHERE study_id = :s AND NOT is_preview"
            stored = [
                tuple(row)
                for row in conn.execute(
                    sa.text(
                        "SELECT trial_id, measure, value FROM response "
                        f"WHERE participant_id IN ({people})"
                    ),
                    {"s": study_id},
                )
            ]
            list_counts = dict(
                conn.execute(
                    sa.text(
                        "SELECT list_index, count(*) FROM participant "
                        "WHERE study_id = :s AND NOT is_preview "
                        "AND status <> 'withdrawn' GROUP BY list_index"
                    ),
                    {"s": study_id},
                ).all()
            )
            answered: dict[int, list[int]] = {}
            for participant_id, position in conn.execute(
                sa.text(
                    f"SELECT participant_id, position FROM trial WHERE answered_at IS NOT NULL "
                    f"AND participant_id IN ({people})"
                ),
                {"s": study_id},
            ):
                answered.setdefault(participant_id, []).append(position)
            orphans = {
                name: conn.execute(sa.text(sql)).scalar_one()
                for name, sql in ORPHAN_QUERIES.items()
            }
            left_sources = dict(
                conn.execute(
                    sa.text(
                        f"SELECT id, left_source FROM trial WHERE left_source IS NOT NULL "
                        f"AND participant_id IN ({people})"
                    ),
                    {"s": study_id},
                ).all()
            )
            statuses = dict(
                conn.execute(
                    sa.text(
                        "SELECT status, count(*) FROM participant "
                        "WHERE study_id = :s AND NOT is_preview "
                        "GROUP BY status"
                    ),
                    {"s": study_id},
                ).all()
            )
    finally:
        engine.dispose()
    return DatabaseFacts(stored, list_counts, n_lists, answered, orphans, statuses, left_sources)


def database_problems(facts: DatabaseFacts, ledger: Ledger) -> list[str]:
    """Run every check of a run's database against what its participants were told."""

    def stored_form(answers: Mapping[int, Mapping[str, str]]) -> dict[int, dict[str, str]]:
        """Return posted answers as the measures they are stored as."""
        return {t: as_measures(posted, facts.left_sources.get(t)) for t, posted in answers.items()}

    problems = answer_problems(
        stored_form(ledger.acknowledged), stored_form(ledger.in_doubt), facts.stored
    )
    problems += balance_problems(
        facts.list_counts, facts.n_lists, facts.statuses.get("withdrawn", 0)
    )
    problems += gap_problems(facts.answered)
    problems += [f"{n} {name}" for name, n in facts.orphans.items() if n]
    return problems
