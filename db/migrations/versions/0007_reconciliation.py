"""reconciliation_runs and reconciliation_items: what each reconciliation found and repaired

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _now() -> sa.TextClause:
    return sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "reconciliation_runs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("status", sa.Text(), server_default="running", nullable=False),
        sa.Column("trigger", sa.Text(), nullable=False),
        sa.Column("checked", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("drifted", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("fixed", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("phase", sa.Text(), server_default="queued", nullable=False),
        sa.Column("last_subscription_id", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("missed_events", sa.Text(), nullable=True),
        sa.Column("missed_events_detail", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'failed')", name="ck_reconciliation_runs_status"
        ),
    )
    op.create_index(
        "uq_reconciliation_runs_running",
        "reconciliation_runs",
        ["status"],
        unique=True,
        postgresql_where=sa.text("status = 'running'"),
    )
    op.create_table(
        "reconciliation_items",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("object_id", sa.Text(), nullable=False),
        sa.Column("stripe_customer_id", sa.Text(), nullable=True),
        sa.Column("field", sa.Text(), nullable=False),
        sa.Column("local_value", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("stripe_value", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("fixed", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["reconciliation_runs.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "run_id", "kind", "object_id", "field", name="uq_reconciliation_items_difference"
        ),
    )


def downgrade() -> None:
    op.drop_table("reconciliation_items")
    op.drop_index("uq_reconciliation_runs_running", table_name="reconciliation_runs")
    op.drop_table("reconciliation_runs")
