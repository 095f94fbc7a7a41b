"""Governance: the authors whose unapproved changes a version carries from another card (a clone), so
that separation of duties follows the changes and not the card.

Revision ID: governance_0003
Revises: governance_0002
"""
import sqlalchemy as sa
from alembic import op

revision = "governance_0003"
down_revision = "governance_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("governance_card_versions") as table:
        table.add_column(sa.Column("carried_authors", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("governance_card_versions") as table:
        table.drop_column("carried_authors")
