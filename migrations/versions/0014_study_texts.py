"""Study texts in several languages

A study's texts (consent, instructions, debrief, block and question texts) written in the
study's other languages, one row per language and text; the default language's stay where
they were.

Revision ID: 0014_study_texts
Revises: 0013_participant_language
Create Date: 2026-12-04 21:40:00
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0014_study_texts"
down_revision = "0013_participant_language"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "study_text",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("block_id", sa.Integer(), nullable=True),
        sa.Column("question_id", sa.Integer(), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["block_id"],
            ["block.id"],
            name=op.f("fk_study_text_block_id_block"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["question_id"],
            ["study_question.id"],
            name=op.f("fk_study_text_question_id_study_question"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["study.id"],
            name=op.f("fk_study_text_study_id_study"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_study_text")),
        sa.UniqueConstraint(
            "study_id", "language", "key", name=op.f("uq_study_text_study_id_language_key")
        ),
    )
    with op.batch_alter_table("study_text", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_study_text_block_id"), ["block_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_study_text_question_id"), ["question_id"], unique=False
        )


def downgrade():
    with op.batch_alter_table("study_text", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_study_text_question_id"))
        batch_op.drop_index(batch_op.f("ix_study_text_block_id"))
    op.drop_table("study_text")
