"""Invoices as Stripe last described them: amounts, status, and the links to read them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    Select,
    bindparam,
    column,
    func,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session
from sqlalchemy.orm.context import FromStatement

from core.stripe_objects import (
    StripeDict,
    invoice_line_summaries,
    invoice_payment_ids,
    invoice_period,
    invoice_price_id,
    invoice_prorations,
    invoice_status,
    invoice_subscription_id,
    timestamp,
)
from db.invoice_archives import kept_copy_status, request_archive
from db.models import Account, CreditEntry, Dispute, EarlyFraudWarning, Invoice, PaymentRefund


def _invoice_upsert() -> tuple[
    FromStatement[tuple[Invoice, str | None]], Select[tuple[Invoice, str | None]]
]:
    """The invoice's upsert and its read-back, built once with a bound parameter per column:
    a renewal stores its invoice four times, and building and keying a statement of twenty
    columns cost the worker more than PostgreSQL took to run it.

    The upsert is run as an ORM `select(...).from_statement(...)`, SQLAlchemy's documented
    form for an upsert that returns objects: executed directly, an `insert(Invoice)` with
    parameters takes the ORM's bulk-insert path, which builds and keys a new statement on
    every call (1.4 ms of worker CPU a call, against 0.6 to 0.8 ms this way)."""
    values = {column: bindparam(f"new_{column}") for column in ("stripe_invoice_id", *_STORED)}
    statement = insert(Invoice).values(values)
    # Payment ids only ever get known, so a later description without them keeps the old ones.
    update = {
        **{column: statement.excluded[column] for column in _STORED},
        "payment_intent_id": func.coalesce(
            statement.excluded.payment_intent_id, Invoice.payment_intent_id
        ),
        "charge_id": func.coalesce(statement.excluded.charge_id, Invoice.charge_id),
    }
    # The kept PDF's status comes back beside the row, for the archive request.
    kept = kept_copy_status().label("kept_status")
    upsert = statement.on_conflict_do_update(
        index_elements=[Invoice.stripe_invoice_id],
        set_=update,
        where=Invoice.state_as_of <= statement.excluded.state_as_of,
    ).returning(Invoice, kept)
    read = select(Invoice, kept).where(
        Invoice.stripe_invoice_id == bindparam("new_stripe_invoice_id")
    )
    return select(Invoice, column("kept_status")).from_statement(upsert), read


_STORED = (
    "account_id",
    "stripe_subscription_id",
    "number",
    "status",
    "billing_reason",
    "currency",
    "amount_due",
    "amount_paid",
    "price_id",
    "plan",
    "payment_intent_id",
    "charge_id",
    "hosted_invoice_url",
    "invoice_pdf",
    "period_start",
    "period_end",
    "prorations",
    "lines",
    "stripe_created",
    "state_as_of",
)
_UPSERT_INVOICE, _READ_INVOICE = _invoice_upsert()


def store_invoice(
    session: Session, *, account: Account, invoice: StripeDict, plan: str | None, as_of: datetime
) -> Invoice:
    """Insert or update the invoice; an older description never overwrites a newer one."""
    intent, charge = invoice_payment_ids(invoice)
    start, end = invoice_period(invoice)
    values = {
        "stripe_invoice_id": invoice["id"],
        "account_id": account.id,
        "stripe_subscription_id": invoice_subscription_id(invoice),
        "number": invoice.get("number"),
        "status": invoice_status(invoice),
        "billing_reason": invoice.get("billing_reason"),
        "currency": invoice.get("currency") or "usd",
        "amount_due": int(invoice.get("amount_due") or 0),
        "amount_paid": int(invoice.get("amount_paid") or 0),
        "price_id": invoice_price_id(invoice),
        "plan": plan,
        "payment_intent_id": intent,
        "charge_id": charge,
        "hosted_invoice_url": invoice.get("hosted_invoice_url"),
        "invoice_pdf": invoice.get("invoice_pdf"),
        "period_start": start,
        "period_end": end,
        "prorations": invoice_prorations(invoice),
        "lines": invoice_line_summaries(invoice),
        # `date` before 2019-03-14.
        "stripe_created": timestamp(invoice.get("created") or invoice.get("date")),
        "state_as_of": as_of,
    }
    params = {f"new_{column}": value for column, value in values.items()}
    # The row comes back from the upsert itself (one round trip); only when the stored
    # description is the newer one, and nothing was written, is it read.
    fresh = {"populate_existing": True}
    found = session.execute(_UPSERT_INVOICE, params, execution_options=fresh).one_or_none()
    if found is None:
        found = session.execute(_READ_INVOICE, params, execution_options=fresh).one()
    row, kept_status = found
    # Every path that stores an invoice (its events, our own calls' answers, the
    # reconciliation) gets a finalized or paid one archived, after the commit.
    request_archive(session, row, kept_status=kept_status)
    return row


def find_invoice_of_payment(
    session: Session, *, payment_intent_id: str | None, charge_id: str | None
) -> Invoice | None:
    """The stored invoice that the payment intent or the charge paid."""
    if not (payment_intent_id or charge_id):
        return None
    return session.scalar(
        _FIND_INVOICE_OF_PAYMENT, {"payment_intent_id": payment_intent_id, "charge_id": charge_id}
    )


# Each id looked up in its own index, then the first found. `payment_intent_id = ? OR
# charge_id = ? LIMIT 1` lets the planner bet on a sequential scan finding a match early
# (it did on a table not analyzed since it was small): on renewal day, when invoices of API
# versions from 2025 on name neither id and no row matches, every charge scanned the whole
# table (O(N) a charge, O(N^2) a renewal day). Built once (docs/decisions/0007); a NULL id
# matches nothing.
_FIND_INVOICE_OF_PAYMENT = (
    select(Invoice)
    .where(
        Invoice.id.in_(
            union_all(
                select(Invoice.id)
                .where(Invoice.payment_intent_id == bindparam("payment_intent_id"))
                .limit(1),
                select(Invoice.id).where(Invoice.charge_id == bindparam("charge_id")).limit(1),
            )
        )
    )
    .limit(1)
)


def paid_applied_as_of(session: Session, *, invoice_id: str) -> datetime | None:
    """The description time of the newest paid event applied to the invoice (None: none)."""
    return session.scalar(_PAID_APPLIED_AS_OF, {"invoice_id": invoice_id})


def mark_paid_applied(session: Session, *, invoice_id: str, as_of: datetime) -> None:
    """Note that a paid event described at `as_of` has its effects applied (in the caller's
    transaction, beside them); an earlier mark's newer time is kept."""
    session.execute(_MARK_PAID_APPLIED, {"invoice_id": invoice_id, "as_of": as_of})


# Built once, on the table (docs/decisions/0007): every paid event reads, the first marks.
_INVOICES = Invoice.__table__.c
_PAID_APPLIED_AS_OF = select(_INVOICES.paid_applied_as_of).where(
    _INVOICES.stripe_invoice_id == bindparam("invoice_id")
)
_MARK_PAID_APPLIED = (
    update(Invoice.__table__)
    .where(_INVOICES.stripe_invoice_id == bindparam("invoice_id"))
    .values(
        paid_applied_as_of=func.greatest(
            func.coalesce(_INVOICES.paid_applied_as_of, bindparam("as_of")), bindparam("as_of")
        )
    )
)


def find_invoice(session: Session, *, invoice_id: str) -> Invoice | None:
    return session.scalar(_FIND_INVOICE, {"invoice_id": invoice_id})


_FIND_INVOICE = select(Invoice).where(Invoice.stripe_invoice_id == bindparam("invoice_id"))


def paid_invoices_prorating(
    session: Session, *, account_id: int, subscription_id: str, price_id: str
) -> list[Invoice]:
    """The account's paid invoices with a proration line of that subscription and price,
    oldest first."""
    line = [{"subscription": subscription_id, "price": price_id}]
    return list(
        session.scalars(
            select(Invoice)
            .where(
                Invoice.account_id == account_id,
                Invoice.status == "paid",
                Invoice.prorations.contains(line),
            )
            .order_by(Invoice.stripe_created.asc().nulls_last(), Invoice.id)
        )
    )


def paid_by(
    table: type[Invoice]
    | type[CreditEntry]
    | type[Dispute]
    | type[PaymentRefund]
    | type[EarlyFraudWarning],
    *,
    payment_intent_id: str | None,
    charge_id: str | None,
) -> ColumnElement[bool] | None:
    """`payment_intent_id = ? OR charge_id = ?` over the ids that are known; None if neither."""
    known = [
        column == value
        for column, value in (
            (table.payment_intent_id, payment_intent_id),
            (table.charge_id, charge_id),
        )
        if value
    ]
    return or_(*known) if known else None


def invoices_page(
    session: Session, *, account_id: int, limit: int, before_id: int | None = None
) -> list[Invoice]:
    """The account's invoices, newest first; `before_id` continues after a previous page."""
    query = select(Invoice).where(Invoice.account_id == account_id)
    if before_id is not None:
        query = query.where(Invoice.id < before_id)
    return list(session.scalars(query.order_by(Invoice.id.desc()).limit(limit)))
