"""The learn-then-recognise (memory) paradigm

Two new tasks, learn (study phase) and recognise (test phase), widen the task CHECK constraints
of block and trial. A trial keeps what the memory tasks schedule: whether a recognise trial's
identity was studied, the fictional name shown (learn) or studied with (recognise), and the names
offered for name recall.

Revision ID: 0011_memory
Revises: 0010_trial_timing
Create Date: 2026-12-04 18:30:00
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0011_memory"
down_revision = "0010_trial_timing"
branch_labels = None
depends_on = None

OLD_TASKS = "task IN ('match', 'rate', 'choose', 'detect')"
NEW_TASKS = "task IN ('match', 'rate', 'choose', 'detect', 'learn', 'recognise')"


def _tasks(table: str, check: str) -> None:
    """Replace a table's task CHECK constraint."""
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.drop_constraint(op.f(f"ck_{table}_task"), type_="check")
        batch_op.create_check_constraint(op.f(f"ck_{table}_task"), check)


def upgrade():
    _tasks("block", NEW_TASKS)
    _tasks("trial", NEW_TASKS)
    with op.batch_alter_table("trial", schema=None) as batch_op:
        batch_op.add_column(sa.Column("studied", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("label", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("options", sa.String(length=200), nullable=True))


def downgrade():
    op.execute("DELETE FROM trial WHERE task IN ('learn', 'recognise')")
    op.execute("DELETE FROM block WHERE task IN ('learn', 'recognise')")
    with op.batch_alter_table("trial", schema=None) as batch_op:
        batch_op.drop_column("options")
        batch_op.drop_column("label")
        batch_op.drop_column("studied")
    _tasks("trial", OLD_TASKS)
    _tasks("block", OLD_TASKS)
