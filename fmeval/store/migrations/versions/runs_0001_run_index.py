"""The run index: one row per finished run.

Revision ID: runs_0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "runs_0001"
down_revision = None
branch_labels = ("runs",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("evaluation", sa.String(200), nullable=False),
        sa.Column("dataset", sa.String(500), nullable=False),
        sa.Column("dataset_sha256", sa.Text),
        sa.Column("model", sa.String(500), nullable=False),
        sa.Column("runner_identity", sa.Text, nullable=False),
        sa.Column("config_hash", sa.String(32), nullable=False),
        sa.Column("scores", sa.Text, nullable=False),
        sa.Column("num_records", sa.Integer, nullable=False),
        sa.Column("num_errors", sa.Integer, nullable=False),
        sa.Column("fmeval_version", sa.String(40)),
        sa.Column("git_commit", sa.String(64)),
        sa.Column("output_dir", sa.Text, nullable=False),
    )
    op.create_index("runs_by_evaluation", "runs", ["evaluation", "dataset"])
    op.create_index("runs_by_model", "runs", ["model"])
    op.create_index("runs_by_created_at", "runs", ["created_at"])


def downgrade() -> None:
    op.drop_table("runs")
