"""disputes: inquiries and chargebacks, their status history and the funds Stripe moved

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "disputes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("stripe_dispute_id", sa.Text(), nullable=False),
        sa.Column("charge_id", sa.Text(), nullable=True),
        sa.Column("payment_intent_id", sa.Text(), nullable=True),
        sa.Column("account_id", sa.BigInteger(), nullable=True),
        sa.Column("grant_entry_id", sa.BigInteger(), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("is_inquiry", sa.Boolean(), nullable=False),
        sa.Column(
            "is_charge_refundable", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("evidence_due_by", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "evidence_submission_count", sa.Integer(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("livemode", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("stripe_created", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state_as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
        ),
        sa.ForeignKeyConstraint(
            ["grant_entry_id"],
            ["credit_ledger.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("stripe_dispute_id"),
    )
    op.create_index(op.f("ix_disputes_account_id"), "disputes", ["account_id"], unique=False)
    op.create_index(op.f("ix_disputes_charge_id"), "disputes", ["charge_id"], unique=False)
    op.create_table(
        "dispute_funds_movements",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("dispute_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("fee", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("balance_transaction_id", sa.Text(), nullable=True),
        sa.Column("stripe_event_id", sa.Text(), nullable=True),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('funds_withdrawn', 'funds_reinstated')",
            name="ck_dispute_funds_movements_kind",
        ),
        sa.ForeignKeyConstraint(
            ["dispute_id"],
            ["disputes.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dispute_id", "kind", name="uq_dispute_funds_movements_kind"),
    )
    op.create_table(
        "dispute_status_changes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("dispute_id", sa.BigInteger(), nullable=False),
        sa.Column("from_status", sa.Text(), nullable=True),
        sa.Column("to_status", sa.Text(), nullable=False),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.Column("stripe_event_id", sa.Text(), nullable=True),
        sa.Column("state_as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["dispute_id"],
            ["disputes.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_dispute_status_changes_dispute_id"),
        "dispute_status_changes",
        ["dispute_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_dispute_status_changes_dispute_id"), table_name="dispute_status_changes")
    op.drop_table("dispute_status_changes")
    op.drop_table("dispute_funds_movements")
    op.drop_index(op.f("ix_disputes_charge_id"), table_name="disputes")
    op.drop_index(op.f("ix_disputes_account_id"), table_name="disputes")
    op.drop_table("disputes")
