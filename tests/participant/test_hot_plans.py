"""The hot statements' plans on PostgreSQL stay index lookups even when made on small tables.

A prepared statement keeps its generic plan. One made at a study's launch on a new database,
while the tables hold a few rows (and, without autovacuum, before any statistics exist), must
not walk every unanswered trial of every participant once thousands have arrived: each scan
of a trial, a participant or a study text has to be an index lookup by a key the statement
is given.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.dialects import postgresql

from survey.extensions import db
from survey.participant import statements
from survey.participant.simulate import agree
from tests.participant.support import participants, trial_form, trial_id

pytestmark = pytest.mark.postgres

PARAMETER = re.compile(r"%\((\w+)\)s")
KEYED_TABLES = {"trial", "participant", "study_text"}


def scans(plan: dict) -> Iterator[dict]:
    """Every node of a plan (EXPLAIN's JSON form) that reads a table."""
    if plan["Node Type"].endswith("Scan") and "Relation Name" in plan:
        yield plan
    for child in plan.get("Plans", ()):
        yield from scans(child)


def generic_plan(connection, statement, values: dict) -> dict:
    """Prepare `statement` as psycopg sends it and return PostgreSQL's generic plan of it."""
    compiled = statement.compile(dialect=postgresql.psycopg.dialect())
    values = {**compiled.params, **values}
    names = list(dict.fromkeys(PARAMETER.findall(str(compiled))))
    numbered = PARAMETER.sub(lambda m: f"${names.index(m.group(1)) + 1}", str(compiled))
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
        cursor.execute(f"PREPARE hot AS {numbered}")
        cursor.execute("SELECT parameter_types::text[] FROM pg_prepared_statements")
        types = cursor.fetchone()[0]
        arguments = ", ".join(
            f"{literal(connection, values[name])}::{kind}"
            for name, kind in zip(names, types, strict=True)
        )
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        cursor.execute(f"EXPLAIN (FORMAT JSON) EXECUTE hot{f'({arguments})' if names else ''}")
        plan = cursor.fetchone()[0]
        cursor.execute("RESET plan_cache_mode")
        cursor.execute("DEALLOCATE hot")
    return (plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"]


def literal(connection, value) -> str:
    """A value as an SQL literal, quoted by psycopg."""
    from psycopg import sql

    return sql.Literal(value).as_string(connection)


def unkeyed(plan: dict) -> list[str]:
    """The scans of a keyed table that are not an index lookup by a condition."""
    return [
        f"{node['Node Type']} on {node['Relation Name']} ({node.get('Index Name', '')})"
        for node in scans(plan)
        if node["Relation Name"] in KEYED_TABLES and "Index Cond" not in node
    ]


@pytest.fixture
def hot(app, client, demo) -> Iterator[tuple]:
    """A participant on their first trial, and a raw psycopg connection to the database."""
    agree(client, "demo")
    form = trial_form(client)
    with app.app_context():
        participant = participants(app)[0]
        raw = db.engine.raw_connection()
        try:
            connection = raw.driver_connection
            connection.rollback()
            connection.autocommit = True
            yield participant, trial_id(form), connection
        finally:
            raw.close()


def test_the_trial_page_finds_the_trials_by_the_participant(hot):
    participant, _trial, connection = hot
    plan = generic_plan(
        connection,
        statements.PAGE_STAMPING,
        {"public_id": participant.public_id, "slug": "demo"},
    )
    assert unkeyed(plan) == []
    assert {node["Relation Name"] for node in scans(plan)} >= KEYED_TABLES


@pytest.mark.parametrize("name", ["TARGET", "STORE_ONE_STATEMENT"])
def test_the_answer_finds_its_trial_by_its_id(hot, name):
    participant, trial, connection = hot
    values = {
        "public_id": participant.public_id,
        "slug": "demo",
        "trial_id": trial,
        "rt_ms": 900,
        "now": datetime.now(UTC),
        "measures": ["seen"],
        "answer_values": ["1"],
        "last": False,
    }
    plan = generic_plan(connection, getattr(statements, name), values)
    assert unkeyed(plan) == []


def test_the_check_finds_a_plan_that_walks_a_table(hot):
    _participant, _trial, connection = hot
    import sqlalchemy as sa

    from survey.models import Trial

    walking = sa.select(Trial.id).where(Trial.answered_at.is_(None)).order_by(Trial.position)
    assert unkeyed(generic_plan(connection, walking, {})) != []
