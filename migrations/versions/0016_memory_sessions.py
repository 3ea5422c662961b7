"""The delay of a memory study: a timed distractor and a second session; undoable question deletes

A participant keeps when the first session ended, when the test phase opens, the code of the
return link and when they came back, and when the distractor before the test phase started and
ended with how many of its sums were answered (and answered right). A deleted question is
kept like a deleted block, so that its deletion can be undone while the study is a draft.

Revision ID: 0016_memory_sessions
Revises: 0015_jobs
Create Date: 2026-12-04 21:40:00
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0016_memory_sessions"
down_revision = "0015_jobs"
branch_labels = None
depends_on = None

TIMES = (
    "waiting_since",
    "return_due_at",
    "returned_at",
    "distractor_started_at",
    "distractor_ended_at",
)

OLD_KINDS = "kind IN ('block', 'identity', 'image')"
NEW_KINDS = "kind IN ('block', 'identity', 'image', 'question')"


def _kinds(check: str) -> None:
    """Replace the deleted_part kind CHECK constraint."""
    with op.batch_alter_table("deleted_part", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_deleted_part_kind"), type_="check")
        batch_op.create_check_constraint(op.f("ck_deleted_part_kind"), check)


def upgrade():
    with op.batch_alter_table("participant", schema=None) as batch_op:
        for name in TIMES:
            batch_op.add_column(sa.Column(name, sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("return_code", sa.String(length=16), nullable=True))
        for name in ("distractor_answered", "distractor_correct"):
            batch_op.add_column(sa.Column(name, sa.Integer(), server_default="0", nullable=False))
        batch_op.create_unique_constraint(batch_op.f("uq_participant_return_code"), ["return_code"])
    _kinds(NEW_KINDS)


def downgrade():
    op.execute("DELETE FROM deleted_part WHERE kind = 'question'")
    _kinds(OLD_KINDS)
    with op.batch_alter_table("participant", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_participant_return_code"), type_="unique")
        for name in ("distractor_correct", "distractor_answered", "return_code", *TIMES):
            batch_op.drop_column(name)
