"""upgrade_top_ups: an upgrade's credits wait for the invoice that pays its proration

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28

An upgrade used to be granted on `customer.subscription.updated`, before anything was paid.
Now the upgrade is recorded in `upgrade_top_ups` and granted when a paid invoice carries its
proration (`invoices.prorations` keeps an invoice's proration lines, so an upgrade recorded
after its invoice was paid still finds it). The ledger entry names that invoice in
`credit_ledger.stripe_invoice_id`, next to its payment's ids, so a refund or a dispute of the
payment finds it. Period grants written before this migration are found by their source id
(the invoice id): the ledger is append-only, so nothing is backfilled.

The new ledger column's index is built CONCURRENTLY, as in 0008, so ledger writes never wait
on it. That part runs first, outside the migration's transaction, and can run again: a failed
build's invalid index is dropped and built again when this migration reruns.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

LEDGER_INDEX = "ix_credit_ledger_stripe_invoice_id"

INDEX_VALIDITY = """
SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE c.relname = %(name)s AND c.relnamespace = current_schema()::regnamespace
"""


def upgrade() -> None:
    # First, outside the transaction (a concurrent build cannot run in one), and repeatable:
    # the ledger column (a catalogue-only change) and its index.
    with op.get_context().autocommit_block():
        op.execute("ALTER TABLE credit_ledger ADD COLUMN IF NOT EXISTS stripe_invoice_id text")
        valid = op.get_bind().exec_driver_sql(INDEX_VALIDITY, {"name": LEDGER_INDEX}).scalar()
        if not valid:
            if valid is not None:  # a failed concurrent build: unusable, yet it slows writes
                op.execute(f"DROP INDEX CONCURRENTLY {LEDGER_INDEX}")
            op.execute(
                f"CREATE INDEX CONCURRENTLY {LEDGER_INDEX} ON credit_ledger (stripe_invoice_id)"
            )
    op.add_column(
        "invoices",
        sa.Column(
            "prorations",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
    )
    op.create_table(
        "upgrade_top_ups",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("stripe_subscription_id", sa.Text(), nullable=False),
        sa.Column("price_id", sa.Text(), nullable=False),
        sa.Column("old_price_id", sa.Text(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stripe_event_id", sa.Text(), nullable=True),
        sa.Column("stripe_invoice_id", sa.Text(), nullable=True),
        sa.Column("credits", sa.BigInteger(), nullable=True),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_index(
        op.f("ix_upgrade_top_ups_account_id"), "upgrade_top_ups", ["account_id"], unique=False
    )
    op.create_index(
        op.f("ix_upgrade_top_ups_stripe_invoice_id"),
        "upgrade_top_ups",
        ["stripe_invoice_id"],
        unique=False,
    )
    op.create_index(
        "ix_upgrade_top_ups_unpaid",
        "upgrade_top_ups",
        ["stripe_subscription_id", "price_id"],
        unique=False,
        postgresql_where=sa.text("settled_at IS NULL"),
    )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {LEDGER_INDEX}")
    op.drop_index("ix_upgrade_top_ups_unpaid", table_name="upgrade_top_ups")
    op.drop_index(op.f("ix_upgrade_top_ups_stripe_invoice_id"), table_name="upgrade_top_ups")
    op.drop_index(op.f("ix_upgrade_top_ups_account_id"), table_name="upgrade_top_ups")
    op.drop_table("upgrade_top_ups")
    op.drop_column("credit_ledger", "stripe_invoice_id")
    op.drop_column("invoices", "prorations")
