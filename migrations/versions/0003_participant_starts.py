"""Start limits, suspicious starts and expiring participants

Starts are counted per study and client address (a keyed digest) so that a script cannot fill
a study; refused starts are counted on the study for the monitor. A participant still in
progress long after starting is marked expired (status and time), freeing its list slot.

Revision ID: 0003_participant_starts
Revises: 0002
Create Date: 2026-12-04 12:55:00
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0003_participant_starts"
down_revision = "0002"
branch_labels = None
depends_on = None

OLD_STATUSES = "status IN ('in_progress', 'completed', 'withdrawn')"
NEW_STATUSES = "status IN ('in_progress', 'completed', 'withdrawn', 'expired')"


def upgrade():
    op.create_table(
        "participant_start",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("address_key", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["study.id"],
            name=op.f("fk_participant_start_study_id_study"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participant_start")),
    )
    with op.batch_alter_table("participant_start", schema=None) as batch_op:
        batch_op.create_index(
            "ix_participant_start_study_address", ["study_id", "address_key", "at"], unique=False
        )
        batch_op.create_index("ix_participant_start_study_at", ["study_id", "at"], unique=False)

    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("starts_refused", sa.Integer(), server_default="0", nullable=False)
        )

    with op.batch_alter_table("participant", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.drop_constraint(batch_op.f("ck_participant_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_participant_status"), NEW_STATUSES)
        batch_op.create_index(
            "ix_participant_study_status", ["study_id", "status", "started_at"], unique=False
        )


def downgrade():
    # Expired participants go back to what they were before: in progress.
    op.execute("UPDATE participant SET status = 'in_progress' WHERE status = 'expired'")
    with op.batch_alter_table("participant", schema=None) as batch_op:
        batch_op.drop_index("ix_participant_study_status")
        batch_op.drop_constraint(batch_op.f("ck_participant_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_participant_status"), OLD_STATUSES)
        batch_op.drop_column("expired_at")

    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.drop_column("starts_refused")

    with op.batch_alter_table("participant_start", schema=None) as batch_op:
        batch_op.drop_index("ix_participant_start_study_at")
        batch_op.drop_index("ix_participant_start_study_address")

    op.drop_table("participant_start")
