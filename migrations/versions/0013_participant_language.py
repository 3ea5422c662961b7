"""The participant's language

Participant pages speak the participant's language (survey/i18n.py), chosen before the consent
and kept from then on: a participant row records it. Participants from before it saw English.

Revision ID: 0013_participant_language
Revises: 0012_block_flow
Create Date: 2026-12-04 21:30:00
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0013_participant_language"
down_revision = "0012_block_flow"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("participant", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("language", sa.String(length=8), server_default="en", nullable=False)
        )


def downgrade():
    with op.batch_alter_table("participant", schema=None) as batch_op:
        batch_op.drop_column("language")
