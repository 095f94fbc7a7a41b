"""Monitoring: schedules, their executions (one per window), and alarm states.

Revision ID: monitoring_0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "monitoring_0001"
down_revision = None
branch_labels = ("monitoring",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitoring_schedules",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("baseline", sa.Text, nullable=False),
        sa.Column("capture", sa.Text, nullable=False),
        sa.Column("ground_truth", sa.Text),
        sa.Column("cron", sa.String(100), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("output", sa.Text, nullable=False),
        sa.Column("alarms", sa.Text, nullable=False),
        sa.Column("actions", sa.Text, nullable=False),
        sa.Column("start", sa.String(40), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "monitoring_executions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("schedule", sa.String(200), nullable=False),
        sa.Column("window_start", sa.String(40), nullable=False),
        sa.Column("window_end", sa.String(40), nullable=False),
        sa.Column("status", sa.String(40), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("metrics", sa.Text, nullable=False),
        sa.Column("violations", sa.Integer, nullable=False),
        sa.Column("alarms", sa.Text, nullable=False),
        sa.Column("output_dir", sa.Text, nullable=False),
        sa.Column("claimed_by", sa.String(200), nullable=False),
        sa.Column("started_at", sa.String(40), nullable=False),
        sa.Column("finished_at", sa.String(40)),
        sa.UniqueConstraint("schedule", "window_start", name="one_execution_per_window"),
    )
    op.create_table(
        "monitoring_alarm_states",
        sa.Column("schedule", sa.String(200), primary_key=True),
        sa.Column("alarm", sa.String(200), primary_key=True),
        sa.Column("state", sa.String(40), nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("monitoring_alarm_states")
    op.drop_table("monitoring_executions")
    op.drop_table("monitoring_schedules")
