"""Simulated participants marked, and reports that include them

`flask simulate-participants` marks the participants it starts (participant.is_simulated):
exports say so in a column, the analysis leaves them out by default. A report computed with
them included at the researcher's request is marked too (report.includes_simulated), so it is
never published.

Revision ID: 0004_simulated_participants
Revises: 0003_participant_starts
Create Date: 2026-12-04 15:30:00
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0004_simulated_participants"
down_revision = "0003_participant_starts"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("participant", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("is_simulated", sa.Boolean(), server_default=sa.false(), nullable=False)
        )

    with op.batch_alter_table("report", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("includes_simulated", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade():
    # Reports that included simulated participants would read as real-only ones: delete them.
    op.execute("DELETE FROM report WHERE includes_simulated")
    with op.batch_alter_table("report", schema=None) as batch_op:
        batch_op.drop_column("includes_simulated")

    with op.batch_alter_table("participant", schema=None) as batch_op:
        batch_op.drop_column("is_simulated")
