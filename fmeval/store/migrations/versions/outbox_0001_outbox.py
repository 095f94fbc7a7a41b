"""The store's outbox (events committed with their change, delivered afterwards) and the audit
log's model column and indexes (the audit log is shared by the CLI, the store and the dashboard).

Revision ID: outbox_0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "outbox_0001"
down_revision = None
branch_labels = ("outbox",)
depends_on = "dashboard_0001"  # the audit table


def upgrade() -> None:
    op.create_table(
        "store_outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("topic", sa.String(100), nullable=False),
        sa.Column("url", sa.String(1000), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.String(40), nullable=False),
        sa.Column("claimed_until", sa.String(40)),
        sa.Column("last_status", sa.Integer),
        sa.Column("last_error", sa.Text),
        sa.Column("finished_at", sa.String(40)),
        sa.UniqueConstraint("event_id", "url", name="uq_store_outbox_event_url"),
    )
    op.create_index("ix_store_outbox_due", "store_outbox", ["status", "next_attempt_at"])
    with op.batch_alter_table("dashboard_audit") as table:
        table.add_column(sa.Column("model", sa.String(500)))
    for column in ("username", "target", "model", "time"):
        op.create_index(f"ix_dashboard_audit_{column}", "dashboard_audit", [column])


def downgrade() -> None:
    for column in ("username", "target", "model", "time"):
        op.drop_index(f"ix_dashboard_audit_{column}", "dashboard_audit")
    with op.batch_alter_table("dashboard_audit") as table:
        table.drop_column("model")
    op.drop_index("ix_store_outbox_due", "store_outbox")
    op.drop_table("store_outbox")
