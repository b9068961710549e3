"""early fraud warnings, purchase context for dispute evidence, network monitoring ratios

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07

- `early_fraud_warnings`: Stripe's `radar.early_fraud_warning` objects, a fact about their
  charge's payment (a hold keyed by the warning id, `billing.settlement`).
- `checkout_contexts` and `payment_records`: the buyer's IP and device recorded when the
  platform opens a Checkout, and each successful charge with its card (fingerprint, brand,
  network) and user: what Visa Compelling Evidence 3.0 matches prior payments on.
- `disputes` gains the network, its reason code, Smart Disputes' submission method (done and
  intended) and Stripe's `enhanced_eligibility`.
- `dispute_ratio_snapshots`: the last monitoring ratio computed per network and month.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def _now() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "early_fraud_warnings",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("stripe_warning_id", sa.Text(), nullable=False),
        sa.Column("charge_id", sa.Text(), nullable=False),
        sa.Column("payment_intent_id", sa.Text(), nullable=True),
        sa.Column("stripe_invoice_id", sa.Text(), nullable=True),
        sa.Column("account_id", sa.BigInteger(), sa.ForeignKey("accounts.id"), nullable=True),
        sa.Column("fraud_type", sa.Text(), nullable=True),
        sa.Column("actionable", sa.Boolean(), nullable=False),
        sa.Column("livemode", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("stripe_created", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state_as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("refund_requested_at", sa.DateTime(timezone=True), nullable=True),
        _now(),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("stripe_warning_id"),
    )
    for column in ("charge_id", "payment_intent_id", "stripe_invoice_id", "account_id"):
        op.create_index(f"ix_early_fraud_warnings_{column}", "early_fraud_warnings", [column])

    op.create_table(
        "checkout_contexts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("checkout_session_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("ip_address", sa.Text(), nullable=True),
        sa.Column("device_fingerprint", sa.Text(), nullable=True),
        sa.Column("payment_intent_id", sa.Text(), nullable=True),
        sa.Column("stripe_invoice_id", sa.Text(), nullable=True),
        _now(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("checkout_session_id"),
    )
    for column in ("payment_intent_id", "stripe_invoice_id"):
        op.create_index(f"ix_checkout_contexts_{column}", "checkout_contexts", [column])

    op.create_table(
        "payment_records",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("charge_id", sa.Text(), nullable=False),
        sa.Column("payment_intent_id", sa.Text(), nullable=True),
        sa.Column("stripe_invoice_id", sa.Text(), nullable=True),
        sa.Column("account_id", sa.BigInteger(), sa.ForeignKey("accounts.id"), nullable=True),
        sa.Column("user_id", sa.Text(), nullable=True),
        sa.Column("ip_address", sa.Text(), nullable=True),
        sa.Column("device_fingerprint", sa.Text(), nullable=True),
        sa.Column("card_fingerprint", sa.Text(), nullable=True),
        sa.Column("card_brand", sa.Text(), nullable=True),
        sa.Column("card_network", sa.Text(), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("stripe_created", sa.DateTime(timezone=True), nullable=False),
        _now(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("charge_id"),
    )
    for column in (
        "payment_intent_id",
        "stripe_invoice_id",
        "account_id",
        "card_fingerprint",
        "stripe_created",
    ):
        op.create_index(f"ix_payment_records_{column}", "payment_records", [column])

    op.add_column("disputes", sa.Column("network", sa.Text(), nullable=True))
    op.add_column("disputes", sa.Column("network_reason_code", sa.Text(), nullable=True))
    op.add_column("disputes", sa.Column("submission_method", sa.Text(), nullable=True))
    op.add_column("disputes", sa.Column("intended_submission_method", sa.Text(), nullable=True))
    op.add_column(
        "disputes",
        sa.Column("enhanced_eligibility", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )

    op.create_table(
        "dispute_ratio_snapshots",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("month", sa.Text(), nullable=False),
        sa.Column("network", sa.Text(), nullable=False),
        sa.Column("settled", sa.BigInteger(), nullable=False),
        sa.Column("fraud_reports", sa.BigInteger(), nullable=False),
        sa.Column("disputes", sa.BigInteger(), nullable=False),
        sa.Column("ratio", sa.Float(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column(
            "computed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("month", "network", name="uq_dispute_ratio_snapshots_month_network"),
    )


def downgrade() -> None:
    op.drop_table("dispute_ratio_snapshots")
    for column in (
        "enhanced_eligibility",
        "intended_submission_method",
        "submission_method",
        "network_reason_code",
        "network",
    ):
        op.drop_column("disputes", column)
    op.drop_table("payment_records")
    op.drop_table("checkout_contexts")
    op.drop_table("early_fraud_warnings")
