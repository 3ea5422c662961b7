"""Separate a study's internal name, participants' title, private note and public summary;
authors of the public page are chosen per member

The internal name is for the research team (the workspace only); the title is what
participants see and what heads the public page; the description stays a private note; the
public summary is what the owner writes for the findings page. Existing studies get their
title as internal name. No member is an author until the owner opts them in.

Revision ID: 0005_public_page
Revises: 0004_simulated_participants
Create Date: 2026-12-04 15:20:00
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0005_public_page"
down_revision = "0004_simulated_participants"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.add_column(sa.Column("name", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column("public_summary", sa.Text(), server_default="", nullable=False)
        )
    op.execute("UPDATE study SET name = title")
    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.alter_column("name", existing_type=sa.String(length=200), nullable=False)

    with op.batch_alter_table("study_member", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("is_author", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade():
    with op.batch_alter_table("study_member", schema=None) as batch_op:
        batch_op.drop_column("is_author")

    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.drop_column("public_summary")
        batch_op.drop_column("name")
