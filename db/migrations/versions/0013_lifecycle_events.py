"""accounts.deleted_at, invoice_payments, checkout_expirations: what the lifecycle events keep

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07

- `accounts.deleted_at`: `customer.deleted` marks the account deleted (its ledger and history
  are kept; the user is unlinked).
- `invoice_payments`: the parts of an invoice paid in several payments (`invoice_payment.paid`,
  API 2025-03-31.basil on), one row per Stripe invoice payment id, so that the invoice grants
  its credits once, when the parts add up to what it asked.
- `checkout_expirations`: every expired Checkout Session once, with whether its customer
  agreed to promotional email (the recovery email's condition).
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("accounts", sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "invoice_payments",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("stripe_invoice_payment_id", sa.Text(), nullable=False, unique=True),
        sa.Column("stripe_invoice_id", sa.Text(), nullable=False, index=True),
        sa.Column("account_id", sa.BigInteger(), sa.ForeignKey("accounts.id"), nullable=True),
        sa.Column("amount_paid", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=True),
        sa.Column("payment_intent_id", sa.Text(), nullable=True),
        sa.Column("charge_id", sa.Text(), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )
    op.create_table(
        "checkout_expirations",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("stripe_checkout_session_id", sa.Text(), nullable=False, unique=True),
        sa.Column(
            "account_id", sa.BigInteger(), sa.ForeignKey("accounts.id"), nullable=True, index=True
        ),
        sa.Column("mode", sa.Text(), nullable=True),
        sa.Column("item", sa.Text(), nullable=True),
        sa.Column("amount_total", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.Text(), nullable=True),
        sa.Column("promotions_consent", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )


def downgrade() -> None:
    op.drop_table("checkout_expirations")
    op.drop_table("invoice_payments")
    op.drop_column("accounts", "deleted_at")
