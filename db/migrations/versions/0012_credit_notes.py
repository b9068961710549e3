"""credit_notes: a credit note is a fact about the payment of the invoice it credits

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07

`credit_note.created` and `credit_note.voided` are stored here (one row per credit note, void
for good once voided) and the payment's ledger is brought to what its facts say
(`billing.settlement`): the part refunded is the same money as the charge's refund (deduped by
the refund id), the rest (the customer's balance, out of band) takes back its own share.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "credit_notes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("stripe_credit_note_id", sa.Text(), nullable=False),
        sa.Column("stripe_invoice_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column(
            "refunds",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("currency", sa.Text(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("stripe_credit_note_id"),
    )
    op.create_index(
        op.f("ix_credit_notes_stripe_invoice_id"), "credit_notes", ["stripe_invoice_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_credit_notes_stripe_invoice_id"), table_name="credit_notes")
    op.drop_table("credit_notes")
