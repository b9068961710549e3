"""invoice_archives: each invoice's archived PDF (store key, sha256, size, source); invoice lines

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07

One row per invoice (unique), pointing at the best copy kept: Stripe's PDF, or the platform's
own (`generated`) where Stripe's could not be had. `invoice_status` is the invoice's status
when the copy was made, so that an invoice archived while `open` is archived again once paid.

`invoices.lines` keeps what the platform's own PDF shows of each line (description, quantity,
amount, period); rows stored before this migration have none, and their PDF shows the total.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "invoices",
        sa.Column(
            "lines",
            postgresql.JSONB(),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
    )
    op.create_table(
        "invoice_archives",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column(
            "stripe_invoice_id",
            sa.Text(),
            sa.ForeignKey("invoices.stripe_invoice_id"),
            nullable=False,
            unique=True,
        ),
        sa.Column("store_key", sa.Text(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("invoice_status", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.CheckConstraint("source IN ('stripe', 'generated')", name="ck_invoice_archives_source"),
        sa.CheckConstraint("size_bytes > 0", name="ck_invoice_archives_size"),
    )


def downgrade() -> None:
    op.drop_table("invoice_archives")
    op.drop_column("invoices", "lines")
