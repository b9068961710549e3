"""Purchase context: the buyer's IP and device recorded when the platform opens a Checkout,
and each successful charge with its card and user (`billing.purchases` fills them)."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session
from sqlalchemy.orm.context import FromStatement

from db.models import CheckoutContext, PaymentRecord


def record_checkout_context(
    session: Session,
    *,
    checkout_session_id: str,
    user_id: str,
    ip_address: str | None,
    device_fingerprint: str | None,
) -> None:
    """Once per session: a replayed request (the same session again) keeps the first."""
    session.execute(
        insert(CheckoutContext)
        .values(
            checkout_session_id=checkout_session_id,
            user_id=user_id,
            ip_address=ip_address,
            device_fingerprint=device_fingerprint,
        )
        .on_conflict_do_nothing(index_elements=[CheckoutContext.checkout_session_id])
    )


def complete_checkout_context(
    session: Session,
    *,
    checkout_session_id: str,
    payment_intent_id: str | None,
    invoice_id: str | None,
) -> CheckoutContext | None:
    """Name the payment a completed session paid; None for a session the platform did not
    open (no context was recorded)."""
    row = session.scalar(
        select(CheckoutContext).where(CheckoutContext.checkout_session_id == checkout_session_id)
    )
    if row is None:
        return None
    row.payment_intent_id = row.payment_intent_id or payment_intent_id
    row.stripe_invoice_id = row.stripe_invoice_id or invoice_id
    session.flush()
    return row


def checkout_context_of_payment(
    session: Session, *, payment_intent_id: str | None, invoice_id: str | None
) -> CheckoutContext | None:
    conditions = []
    if payment_intent_id:
        conditions.append(CheckoutContext.payment_intent_id == payment_intent_id)
    if invoice_id:
        conditions.append(CheckoutContext.stripe_invoice_id == invoice_id)
    if not conditions:
        return None
    return session.scalar(
        select(CheckoutContext).where(or_(*conditions)).order_by(CheckoutContext.id).limit(1)
    )


def has_recent_checkout(session: Session, *, user_id: str, since: datetime) -> bool:
    """Whether the user opened a Checkout here since then (a charge may be its payment)."""
    return session.scalar(_RECENT_CHECKOUT, {"user_id": user_id, "since": since}) is not None


# Built once: asked for every charge of a known user (docs/decisions/0007).
_RECENT_CHECKOUT = (
    select(CheckoutContext.id)
    .where(
        CheckoutContext.user_id == bindparam("user_id"),
        CheckoutContext.created_at >= bindparam("since"),
    )
    .limit(1)
)


def upsert_payment_record(
    session: Session, *, charge_id: str, values: dict[str, Any]
) -> PaymentRecord:
    """Store what is known of the charge; a later fact fills what an earlier one lacked and
    never erases it, so events in any order leave the same row. The row as stored (from the
    upsert itself)."""
    columns = tuple(name for name in values if name != "charge_id")
    params = {f"new_{name}": values[name] for name in columns}
    return session.scalars(
        _payment_record_upsert(columns),
        {"new_charge_id": charge_id, **params},
        execution_options={"populate_existing": True},
    ).one()


@lru_cache(maxsize=32)
def _payment_record_upsert(columns: tuple[str, ...]) -> FromStatement[tuple[PaymentRecord]]:
    """The upsert for these columns, built once per set of columns (a handful: one per kind
    of event that stores a charge; docs/decisions/0007). Run as `from_statement`: an
    `insert(PaymentRecord)` run directly takes the ORM's bulk path, which keys a new
    statement every call (`db.invoices._invoice_upsert`)."""
    table = PaymentRecord.__table__
    statement = insert(PaymentRecord).values(
        {name: bindparam(f"new_{name}") for name in ("charge_id", *columns)}
    )
    upsert = statement.on_conflict_do_update(
        index_elements=[PaymentRecord.charge_id],
        set_={
            name: func.coalesce(table.c[name], statement.excluded[name])
            for name in columns
            if name not in ("amount", "stripe_created")
        },
    ).returning(PaymentRecord)
    return select(PaymentRecord).from_statement(upsert)


def find_payment_record(session: Session, *, charge_id: str) -> PaymentRecord | None:
    return session.scalar(select(PaymentRecord).where(PaymentRecord.charge_id == charge_id))


def records_of_payment(
    session: Session, *, payment_intent_id: str | None, invoice_id: str | None
) -> list[PaymentRecord]:
    conditions = []
    if payment_intent_id:
        conditions.append(PaymentRecord.payment_intent_id == payment_intent_id)
    if invoice_id:
        conditions.append(PaymentRecord.stripe_invoice_id == invoice_id)
    if not conditions:
        return []
    return list(session.scalars(select(PaymentRecord).where(or_(*conditions))))


def latest_card_of_account(session: Session, *, account_id: int) -> PaymentRecord | None:
    """The account's newest payment whose card is known (a renewal inherits it)."""
    return session.scalar(
        select(PaymentRecord)
        .where(PaymentRecord.account_id == account_id, PaymentRecord.card_fingerprint.is_not(None))
        .order_by(PaymentRecord.stripe_created.desc())
        .limit(1)
    )


def payments_of_card(
    session: Session, *, card_fingerprint: str, start: datetime, end: datetime
) -> list[PaymentRecord]:
    """Payments made with the card between start and end (inclusive), oldest first."""
    return list(
        session.scalars(
            select(PaymentRecord)
            .where(
                PaymentRecord.card_fingerprint == card_fingerprint,
                PaymentRecord.stripe_created >= start,
                PaymentRecord.stripe_created <= end,
            )
            .order_by(PaymentRecord.stripe_created)
        )
    )
