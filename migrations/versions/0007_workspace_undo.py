"""Deleted design parts, kept so that a deletion can be undone while the study is a draft

Deleting a block, an identity or an image of a draft keeps the deleted rows (as JSON) in
deleted_part, and their image files in storage, until the study opens or newer deletions push
them out; "Undo" puts them back as they were.

Revision ID: 0007_workspace_undo
Revises: 0006_report_charts
Create Date: 2026-12-04 18:30:00
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0007_workspace_undo"
down_revision = "0006_report_charts"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "deleted_part",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("label", sa.String(length=300), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_by_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('block', 'identity', 'image')", name=op.f("ck_deleted_part_kind")
        ),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["study.id"],
            name=op.f("fk_deleted_part_study_id_study"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["deleted_by_id"],
            ["researcher.id"],
            name=op.f("fk_deleted_part_deleted_by_id_researcher"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deleted_part")),
    )
    op.create_index(op.f("ix_deleted_part_study_id"), "deleted_part", ["study_id"], unique=False)


def downgrade():
    op.drop_index(op.f("ix_deleted_part_study_id"), table_name="deleted_part")
    op.drop_table("deleted_part")
