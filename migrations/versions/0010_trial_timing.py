"""Per-trial timing: what the browser achieved on a sequential match's timed phases

A sequential match shows a fixation cross, the headshot, a mask and a blank interval, each
scheduled on animation frames. Each answered trial with such a phase records whether it was
timed (the script ran it and reported plausible frame timestamps) or untimed (no script: both
photos showed at once), the durations achieved in ms and the display's estimated refresh rate.

Revision ID: 0010_trial_timing
Revises: 0009_questions
Create Date: 2026-12-04 19:20:00
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0010_trial_timing"
down_revision = "0009_questions"
branch_labels = None
depends_on = None

ACHIEVED = (
    "fixation_ms_achieved",
    "exposure_ms_achieved",
    "mask_ms_achieved",
    "isi_ms_achieved",
    "refresh_hz",
)


def upgrade():
    with op.batch_alter_table("trial", schema=None) as batch_op:
        batch_op.add_column(sa.Column("timing", sa.String(length=8), nullable=True))
        for name in ACHIEVED:
            batch_op.add_column(sa.Column(name, sa.Double(), nullable=True))
        batch_op.create_check_constraint(
            op.f("ck_trial_timing"), "timing IS NULL OR timing IN ('timed', 'untimed')"
        )


def downgrade():
    with op.batch_alter_table("trial", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_trial_timing"), type_="check")
        for name in reversed(ACHIEVED):
            batch_op.drop_column(name)
        batch_op.drop_column("timing")
