"""The facts stored about one payment that the ledger follows: its refunds, the credit notes
of the invoice it paid (and its disputes, kept in `disputes`), found by the payment's ids or
the invoice it paid."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import Select, bindparam, case, exists, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.invoices import paid_by
from db.models import CreditNote, Dispute, EarlyFraudWarning, Invoice, PaymentRefund


def record_refund(
    session: Session,
    *,
    charge_id: str,
    payment_intent_id: str | None,
    invoice_id: str | None,
    amount: int,
    amount_refunded: int,
    currency: str | None,
) -> PaymentRefund:
    """Store what has been refunded of the charge; the largest amount seen wins, so events
    in any order leave the same row. Ids learnt later fill what an earlier event lacked."""
    table = PaymentRefund.__table__
    excluded = insert(PaymentRefund).excluded
    session.execute(
        insert(PaymentRefund)
        .values(
            charge_id=charge_id,
            payment_intent_id=payment_intent_id,
            stripe_invoice_id=invoice_id,
            amount=amount,
            amount_refunded=amount_refunded,
            currency=currency,
        )
        .on_conflict_do_update(
            index_elements=[PaymentRefund.charge_id],
            set_={
                "amount_refunded": func.greatest(table.c.amount_refunded, excluded.amount_refunded),
                "amount": func.greatest(table.c.amount, excluded.amount),
                "payment_intent_id": func.coalesce(
                    table.c.payment_intent_id, excluded.payment_intent_id
                ),
                "stripe_invoice_id": func.coalesce(
                    table.c.stripe_invoice_id, excluded.stripe_invoice_id
                ),
                "updated_at": func.now(),
            },
        )
    )
    row = session.scalar(select(PaymentRefund).where(PaymentRefund.charge_id == charge_id))
    assert row is not None
    session.refresh(row)
    return row


def refunds_of_payment(
    session: Session,
    *,
    payment_intent_id: str | None,
    charge_id: str | None,
    invoice_id: str | None,
) -> list[PaymentRefund]:
    conditions = []
    match = paid_by(PaymentRefund, payment_intent_id=payment_intent_id, charge_id=charge_id)
    if match is not None:
        conditions.append(match)
    if invoice_id:
        conditions.append(PaymentRefund.stripe_invoice_id == invoice_id)
    if not conditions:
        return []
    return list(
        session.scalars(select(PaymentRefund).where(or_(*conditions)).order_by(PaymentRefund.id))
    )


def disputes_of_payment(
    session: Session, *, payment_intent_id: str | None, charge_id: str | None
) -> list[Dispute]:
    match = paid_by(Dispute, payment_intent_id=payment_intent_id, charge_id=charge_id)
    if match is None:
        return []
    return list(session.scalars(select(Dispute).where(match).order_by(Dispute.id)))


def warnings_of_payment(
    session: Session,
    *,
    payment_intent_id: str | None,
    charge_id: str | None,
    invoice_id: str | None,
) -> list[EarlyFraudWarning]:
    conditions = []
    match = paid_by(EarlyFraudWarning, payment_intent_id=payment_intent_id, charge_id=charge_id)
    if match is not None:
        conditions.append(match)
    if invoice_id:
        conditions.append(EarlyFraudWarning.stripe_invoice_id == invoice_id)
    if not conditions:
        return []
    return list(
        session.scalars(
            select(EarlyFraudWarning).where(or_(*conditions)).order_by(EarlyFraudWarning.id)
        )
    )


def has_facts(
    session: Session,
    *,
    payment_intent_id: str | None,
    charge_id: str | None,
    invoice_id: str | None,
) -> bool:
    """Whether any refund, credit note, chargeback or early fraud warning names the payment
    by one of these ids: one round trip where reading each kind would take four."""
    ids = {"payment_intent_id": payment_intent_id, "charge_id": charge_id, "invoice_id": invoice_id}
    known = tuple(name for name, value in ids.items() if value)
    if not known:
        return False
    return bool(session.scalar(_facts_exist(known), {name: ids[name] for name in known}))


@lru_cache(maxsize=8)
def _facts_exist(known: tuple[str, ...]) -> Select[tuple[bool]]:
    """`has_facts`'s statement for the ids known (one of seven shapes), built once per shape:
    every paid invoice asks (docs/decisions/0007)."""
    params = {name: bindparam(name) for name in known}
    found = []
    for model in (PaymentRefund, Dispute, EarlyFraudWarning):
        conditions = [
            getattr(model, name) == params[name]
            for name in ("payment_intent_id", "charge_id")
            if name in params
        ]
        if "invoice_id" in params and model is not Dispute:
            conditions.append(model.stripe_invoice_id == params["invoice_id"])
        if conditions:
            found.append(exists().where(or_(*conditions)))
    if "invoice_id" in params:
        found.append(exists().where(CreditNote.stripe_invoice_id == params["invoice_id"]))
    return select(or_(*found))


def invoice_payment(session: Session, *, invoice_id: str) -> tuple[str | None, str | None]:
    """(payment intent, charge) of a stored invoice; (None, None) when unknown."""
    row = session.execute(
        select(Invoice.payment_intent_id, Invoice.charge_id).where(
            Invoice.stripe_invoice_id == invoice_id
        )
    ).first()
    return (row[0], row[1]) if row else (None, None)


VOID = "void"


def record_credit_note(
    session: Session,
    *,
    credit_note_id: str,
    invoice_id: str,
    status: str,
    amount: int,
    refunds: list[dict[str, Any]],
    currency: str | None,
) -> CreditNote:
    """Store the credit note; void is final (a late `credit_note.created` after
    `credit_note.voided` changes nothing), and refunds learnt later are kept."""
    table = CreditNote.__table__
    excluded = insert(CreditNote).excluded
    session.execute(
        insert(CreditNote)
        .values(
            stripe_credit_note_id=credit_note_id,
            stripe_invoice_id=invoice_id,
            status=status,
            amount=amount,
            refunds=refunds,
            currency=currency,
        )
        .on_conflict_do_update(
            index_elements=[CreditNote.stripe_credit_note_id],
            set_={
                "status": case((table.c.status == VOID, table.c.status), else_=excluded.status),
                "refunds": case(
                    (func.jsonb_array_length(excluded.refunds) > 0, excluded.refunds),
                    else_=table.c.refunds,
                ),
                "updated_at": func.now(),
            },
        )
    )
    row = session.scalar(
        select(CreditNote).where(CreditNote.stripe_credit_note_id == credit_note_id)
    )
    assert row is not None
    session.refresh(row)
    return row


def credit_notes_of_invoice(session: Session, *, invoice_id: str | None) -> list[CreditNote]:
    if not invoice_id:
        return []
    return list(
        session.scalars(
            select(CreditNote)
            .where(CreditNote.stripe_invoice_id == invoice_id)
            .order_by(CreditNote.stripe_credit_note_id)
        )
    )
