"""webhook_events: the audit table and outbox of every Stripe delivery

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

STATUSES = "'received', 'queued', 'processing', 'processed', 'failed', 'ignored'"
PENDING = "'received', 'queued', 'processing'"


def upgrade() -> None:
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("stripe_event_id", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("api_version", sa.Text()),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("account", sa.Text()),
        sa.Column("stripe_created", sa.DateTime(timezone=True)),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        sa.Column("status", sa.Text(), server_default="received", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text()),
        sa.Column(
            "received_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("enqueued_at", sa.DateTime(timezone=True)),
        sa.Column("claimed_at", sa.DateTime(timezone=True)),
        sa.Column("processed_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint(f"status IN ({STATUSES})", name="ck_webhook_events_status"),
        sa.UniqueConstraint("stripe_event_id", name="webhook_events_stripe_event_id_key"),
    )
    op.create_index("ix_webhook_events_status_id", "webhook_events", ["status", "id"])
    op.create_index("ix_webhook_events_type_id", "webhook_events", ["type", "id"])
    op.create_index(
        "ix_webhook_events_pending",
        "webhook_events",
        ["id"],
        postgresql_where=sa.text(f"status IN ({PENDING})"),
    )


def downgrade() -> None:
    op.drop_table("webhook_events")
