"""Index each participant's unanswered trials in order

The trial page reads a participant's first two unanswered trials, and an answer is taken only
when no earlier trial is unanswered; late in a study both walked every answered trial first.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 06:20:00
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("trial", schema=None) as batch_op:
        batch_op.create_index(
            "ix_trial_unanswered",
            ["participant_id", "position"],
            unique=False,
            sqlite_where=sa.text("answered_at IS NULL"),
            postgresql_where=sa.text("answered_at IS NULL"),
        )


def downgrade():
    with op.batch_alter_table("trial", schema=None) as batch_op:
        batch_op.drop_index("ix_trial_unanswered")
