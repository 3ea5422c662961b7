"""Questions the researcher writes

A study's questions page was a fixed form (age in years, gender). Each study now has its own
questions (survey/questions.py), edited in the workspace while it is a draft. Studies that
asked the fixed form get the same two questions (codes `age` and `gender`, the keys their
answers are already stored under), so they ask and export as before; a study that had turned
the form off gets none.

Revision ID: 0009_questions
Revises: 0008_trial_shown_at
Create Date: 2026-12-04 19:30:00
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0009_questions"
down_revision = "0008_trial_shown_at"
branch_labels = None
depends_on = None

# As survey.questions.legacy_questions() returns them on the day of this migration.
LEGACY = [
    ("age", "number", "Your age in years", {"min": 16, "max": 110}),
    (
        "gender",
        "choice",
        "Your gender",
        {
            "options": [
                ["woman", "Woman"],
                ["man", "Man"],
                ["non_binary", "Non-binary"],
                ["other", "Another gender"],
                ["prefer_not_to_say", "Prefer not to say"],
            ]
        },
    ),
]


def upgrade():
    table = op.create_table(
        "study_question",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("text", sa.String(length=500), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('likert', 'choice', 'checkboxes', 'number', 'text')",
            name=op.f("ck_study_question_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["study.id"],
            name=op.f("fk_study_question_study_id_study"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_study_question")),
        sa.UniqueConstraint("study_id", "code", name=op.f("uq_study_question_study_id_code")),
    )
    study = sa.table("study", sa.column("id", sa.Integer()), sa.column("settings", sa.JSON()))
    rows = []
    for study_id, settings in op.get_bind().execute(sa.select(study.c.id, study.c.settings)):
        if isinstance(settings, dict) and settings.get("demographics", True) is False:
            continue
        for position, (code, kind, text, spec) in enumerate(LEGACY, start=1):
            rows.append(
                {
                    "study_id": study_id,
                    "position": position,
                    "code": code,
                    "kind": kind,
                    "text": text,
                    "required": False,
                    "spec": spec,
                }
            )
    if rows:
        op.bulk_insert(table, rows)


def downgrade():
    op.drop_table("study_question")
