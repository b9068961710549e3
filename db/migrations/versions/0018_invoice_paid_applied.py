"""invoices.paid_applied_as_of: the paid-invoice events already applied

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07

Stripe sends `invoice.paid` and `invoice.payment_succeeded` for the same payment, with the
same invoice. The first one applied stores the time of its description here, in the
transaction of its effects; the second finds nothing newer to apply and does only this one
read (renewal day: about 12 % of the events pool's CPU). A nullable column with no default:
adding it rewrites nothing.
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "invoices", sa.Column("paid_applied_as_of", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("invoices", "paid_applied_as_of")
