"""When each trial was first shown

trial.shown_at is set, from the database's clock, by the statement that serves the trial page
the first time it is served (a reload keeps the first time). trials.csv exports it beside
answered_at. Trials served before this revision keep it empty.

Revision ID: 0008_trial_shown_at
Revises: 0007_workspace_undo
Create Date: 2026-12-04 18:30:00
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0008_trial_shown_at"
down_revision = "0007_workspace_undo"
branch_labels = None
depends_on = None


def upgrade():
    # A nullable column without a default: an ALTER TABLE … ADD COLUMN on both databases,
    # without copying the trial table.
    op.add_column("trial", sa.Column("shown_at", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table("trial", schema=None) as batch_op:
        batch_op.drop_column("shown_at")
