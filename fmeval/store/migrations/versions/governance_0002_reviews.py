"""Governance: review actions with their comments and content hashes, the approval's time, and
what the registry shows of each version (risk rating, model name, run ids) beside its content.

Revision ID: governance_0002
Revises: governance_0001
"""
import json

import sqlalchemy as sa
from alembic import op

revision = "governance_0002"
down_revision = "governance_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "governance_reviews",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("time", sa.String(40), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("comment", sa.Text),
    )
    op.create_index("ix_governance_reviews_card", "governance_reviews", ["name", "version"])
    op.create_index("ix_governance_events_card", "governance_events", ["card"])
    with op.batch_alter_table("governance_cards") as table:
        table.add_column(sa.Column("approved_at", sa.String(40)))
    with op.batch_alter_table("governance_card_versions") as table:
        table.add_column(sa.Column("risk_rating", sa.String(20)))
        table.add_column(sa.Column("model_name", sa.Text))
        table.add_column(sa.Column("run_ids", sa.Text))
    versions = sa.table("governance_card_versions", sa.column("name"), sa.column("version"), sa.column("content"),
                        sa.column("risk_rating"), sa.column("model_name"), sa.column("run_ids"))
    connection = op.get_bind()
    for row in list(connection.execute(sa.select(versions.c.name, versions.c.version, versions.c.content))):
        content = json.loads(row.content)
        run_ids = [job.get("metadata", {}).get("fmeval_run_id") for job in content.get("evaluation_details", [])]
        connection.execute(versions.update().where((versions.c.name == row.name) & (versions.c.version == row.version))
                           .values(risk_rating=content.get("intended_uses", {}).get("risk_rating"),
                                   model_name=content.get("model_overview", {}).get("model_name"),
                                   run_ids=json.dumps([run_id for run_id in run_ids if run_id])))
    cards = sa.table("governance_cards", sa.column("approved_at"), sa.column("updated_at"),
                     sa.column("approved_version"))
    # before this revision the approval's time was not kept: the card's last change stands for it
    connection.execute(cards.update().where(cards.c.approved_version.isnot(None)).values(approved_at=cards.c.updated_at))


def downgrade() -> None:
    with op.batch_alter_table("governance_card_versions") as table:
        for column in ("run_ids", "model_name", "risk_rating"):
            table.drop_column(column)
    with op.batch_alter_table("governance_cards") as table:
        table.drop_column("approved_at")
    op.drop_index("ix_governance_events_card", "governance_events")
    op.drop_table("governance_reviews")
