"""Governance: model cards, their immutable versions, the event log and its webhooks.

Revision ID: governance_0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "governance_0001"
down_revision = None
branch_labels = ("governance",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "governance_cards",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
        sa.Column("approved_version", sa.Integer),
        sa.Column("approved_by", sa.String(200)),
    )
    op.create_table(
        "governance_card_versions",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("diff", sa.Text, nullable=False),
        sa.Column("note", sa.Text),
    )
    op.create_table(
        "governance_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("time", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("card", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("deliveries", sa.Text, nullable=False),
    )
    op.create_table(
        "governance_webhooks",
        sa.Column("url", sa.String(1000), primary_key=True),
        sa.Column("created_at", sa.String(40), nullable=False),
    )


def downgrade() -> None:
    for table in ("governance_webhooks", "governance_events", "governance_card_versions", "governance_cards"):
        op.drop_table(table)
