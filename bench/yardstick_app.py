"""The yardstick for bench/participants.py: a bare Flask app that inserts one row per POST."""

from __future__ import annotations

import os

import sqlalchemy as sa
from flask import Flask, request

from survey.config import database_uri, engine_options

metadata = sa.MetaData()
answers = sa.Table(
    "yardstick_answer",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("participant", sa.String(32), nullable=False),
    sa.Column("value", sa.String(32), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
)

app = Flask(__name__)
_engines: dict[str, sa.Engine] = {}


def engine() -> sa.Engine:
    """Return this worker's engine for DATABASE_URL, made on first use."""
    uri = database_uri(os.environ["DATABASE_URL"])
    if uri not in _engines:
        _engines[uri] = sa.create_engine(uri, **engine_options(uri))
    return _engines[uri]


@app.post("/answer")
def answer():
    """Insert one row and answer 204."""
    with engine().begin() as conn:
        conn.execute(
            answers.insert().values(
                participant=request.form.get("participant", "")[:32],
                value=request.form.get("value", "")[:32],
            )
        )
    return "", 204


def create_table(url: str) -> None:
    """Create the yardstick's table afresh (called by the benchmark before serving)."""
    uri = database_uri(url)
    setup = sa.create_engine(uri)
    metadata.drop_all(setup)
    metadata.create_all(setup)
    setup.dispose()
