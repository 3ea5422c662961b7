"""Drawn report charts, stored once per report

Public chart cards and report figures were drawn by matplotlib on every request (about 0.2 s
of CPU each). Each drawn chart is now stored once per report, name and format; it is deleted
with its report (ON DELETE CASCADE), so a withdrawal that deletes the reports deletes them too.

Revision ID: 0006_report_charts
Revises: 0005_public_page
Create Date: 2026-12-04 15:20:00
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0006_report_charts"
down_revision = "0005_public_page"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "report_chart",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("fmt", sa.String(length=8), nullable=False),
        sa.Column("inputs", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["report.id"],
            name=op.f("fk_report_chart_report_id_report"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_chart")),
        sa.UniqueConstraint(
            "report_id", "name", "fmt", name=op.f("uq_report_chart_report_id_name_fmt")
        ),
    )


def downgrade():
    op.drop_table("report_chart")
