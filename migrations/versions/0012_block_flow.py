"""Block flow: block order, pages between trials and questions after a block

A participant records the order the blocks ran in and, counterbalanced, the balanced Latin
square's row; the pages planned between trials (block instructions, breaks, a block's
questions) with how many were passed and where the next comes; and the answers to the
questions asked after a block. A question may belong to a block (asked right after it).

Revision ID: 0012_block_flow
Revises: 0011_memory
Create Date: 2026-12-04 21:40:00
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0012_block_flow"
down_revision = "0011_memory"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("participant", schema=None) as batch_op:
        batch_op.add_column(sa.Column("block_answers", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("block_order", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("block_order_row", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("flow_steps", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("flow_step", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("next_step_at", sa.Integer(), nullable=True))
    with op.batch_alter_table("study_question", schema=None) as batch_op:
        batch_op.add_column(sa.Column("block_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_study_question_block_id"), ["block_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_study_question_block_id_block"),
            "block",
            ["block_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade():
    with op.batch_alter_table("study_question", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_study_question_block_id_block"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_study_question_block_id"))
        batch_op.drop_column("block_id")
    with op.batch_alter_table("participant", schema=None) as batch_op:
        batch_op.drop_column("next_step_at")
        batch_op.drop_column("flow_step")
        batch_op.drop_column("flow_steps")
        batch_op.drop_column("block_order_row")
        batch_op.drop_column("block_order")
        batch_op.drop_column("block_answers")
