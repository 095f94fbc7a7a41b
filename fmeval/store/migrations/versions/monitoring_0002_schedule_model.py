"""Monitoring: the model a schedule watches (its label in the run index), for the model registry.

Revision ID: monitoring_0002
Revises: monitoring_0001
"""
import sqlalchemy as sa
from alembic import op

revision = "monitoring_0002"
down_revision = "monitoring_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("monitoring_schedules") as table:
        table.add_column(sa.Column("model", sa.String(500)))


def downgrade() -> None:
    with op.batch_alter_table("monitoring_schedules") as table:
        table.drop_column("model")
