"""payment_refunds: a refund is a fact about its payment, stored whatever else is known

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07

`charge.refunded` used to look for the grant it takes back and, finding none (the invoice's
event not there yet), log and stop for good. Now the refund is stored first (one row per
charge, keeping the largest `amount_refunded` seen), and the payment's ledger is brought to
what every fact stored about it says (`billing.settlement`), whichever comes last.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payment_refunds",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("charge_id", sa.Text(), nullable=False),
        sa.Column("payment_intent_id", sa.Text(), nullable=True),
        sa.Column("stripe_invoice_id", sa.Text(), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("amount_refunded", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("charge_id"),
    )
    op.create_index(
        op.f("ix_payment_refunds_payment_intent_id"),
        "payment_refunds",
        ["payment_intent_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_payment_refunds_stripe_invoice_id"),
        "payment_refunds",
        ["stripe_invoice_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_payment_refunds_stripe_invoice_id"), table_name="payment_refunds")
    op.drop_index(op.f("ix_payment_refunds_payment_intent_id"), table_name="payment_refunds")
    op.drop_table("payment_refunds")
