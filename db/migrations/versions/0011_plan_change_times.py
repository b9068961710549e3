"""upgrade_top_ups.changed_at: when a plan change happened, for its prorated credits

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

An upgrade's top-up and a downgrade's take-back are prorated by the share of the period left
at the change. The paying proration line says it for an upgrade; a downgrade (whose invoice
pays nothing) has only its event's time, kept here. Nullable: rows recorded before this
migration have none, and are read as changed when they were recorded (`created_at`).
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "upgrade_top_ups", sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("upgrade_top_ups", "changed_at")
