"""The delay of a memory study: a timed distractor and a second session

A participant keeps when the first session ended, when the test phase opens, the code of the
return link and when they came back, and when the distractor before the test phase started and
ended with how many of its sums were answered (and answered right).

Revision ID: 0016_memory_sessions
Revises: 0011_memory
Create Date: 2026-12-04 21:40:00
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0016_memory_sessions"
down_revision = "0011_memory"
branch_labels = None
depends_on = None

TIMES = (
    "waiting_since",
    "return_due_at",
    "returned_at",
    "distractor_started_at",
    "distractor_ended_at",
)


def upgrade():
    with op.batch_alter_table("participant", schema=None) as batch_op:
        for name in TIMES:
            batch_op.add_column(sa.Column(name, sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("return_code", sa.String(length=16), nullable=True))
        for name in ("distractor_answered", "distractor_correct"):
            batch_op.add_column(sa.Column(name, sa.Integer(), server_default="0", nullable=False))
        batch_op.create_unique_constraint(batch_op.f("uq_participant_return_code"), ["return_code"])


def downgrade():
    with op.batch_alter_table("participant", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_participant_return_code"), type_="unique")
        for name in ("distractor_correct", "distractor_answered", "return_code", *TIMES):
            batch_op.drop_column(name)
