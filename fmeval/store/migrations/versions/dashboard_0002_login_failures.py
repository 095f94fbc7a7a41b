"""Dashboard: failed logins per account and per client, and their lockouts.

Revision ID: dashboard_0002
Revises: dashboard_0001
"""
import sqlalchemy as sa
from alembic import op

revision = "dashboard_0002"
down_revision = "dashboard_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dashboard_login_failures",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("first_at", sa.String(40), nullable=False),
        sa.Column("locked_until", sa.String(40)),
    )


def downgrade() -> None:
    op.drop_table("dashboard_login_failures")
