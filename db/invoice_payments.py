"""The parts of invoices paid in several payments (`invoice_payment.paid`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.models import InvoicePayment


def record_part(
    session: Session,
    *,
    invoice_payment_id: str,
    invoice_id: str,
    account_id: int | None,
    amount_paid: int,
    currency: str | None,
    payment_intent_id: str | None,
    charge_id: str | None,
    paid_at: datetime | None,
) -> bool:
    """Keep one part, once per Stripe invoice payment id; whether it was new. A part kept
    before its invoice was known gets the account now."""
    inserted = session.execute(
        insert(InvoicePayment)
        .values(
            stripe_invoice_payment_id=invoice_payment_id,
            stripe_invoice_id=invoice_id,
            account_id=account_id,
            amount_paid=amount_paid,
            currency=currency,
            payment_intent_id=payment_intent_id,
            charge_id=charge_id,
            paid_at=paid_at,
        )
        .on_conflict_do_nothing(index_elements=[InvoicePayment.stripe_invoice_payment_id])
        .returning(InvoicePayment.id)
    ).scalar_one_or_none()
    if account_id is not None:
        session.execute(
            update(InvoicePayment)
            .where(
                InvoicePayment.stripe_invoice_id == invoice_id,
                InvoicePayment.account_id.is_(None),
            )
            .values(account_id=account_id)
        )
    return inserted is not None


def amount_paid_in_parts(session: Session, *, invoice_id: str) -> int:
    return int(session.scalar(_PAID_IN_PARTS, {"invoice_id": invoice_id}) or 0)


# Built once: every paid invoice asks (docs/decisions/0007).
_PAID_IN_PARTS = select(func.coalesce(func.sum(InvoicePayment.amount_paid), 0)).where(
    InvoicePayment.stripe_invoice_id == bindparam("invoice_id")
)


def latest_part(session: Session, *, invoice_id: str) -> InvoicePayment | None:
    """The part that completed the payment (the last paid), whose payment the grant names."""
    return session.scalar(
        select(InvoicePayment)
        .where(InvoicePayment.stripe_invoice_id == invoice_id)
        .order_by(InvoicePayment.paid_at.desc().nulls_last(), InvoicePayment.id.desc())
        .limit(1)
    )
