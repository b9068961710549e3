"""Which invoices have their PDF archived, and which still need it.

`store_invoice` calls `request_archive` for every invoice it stores: a finalized or paid
invoice without a kept copy (or kept only as it was before it was paid) is noted on the
session, and the worker publishes the archive task for it once the transaction commits
(`tasks.invoice_archive`). Nothing is published for a transaction that rolls back, and an
invoice whose task is lost is found again by the nightly reconciliation
(`invoices_missing_archive`).
"""

from __future__ import annotations

import contextvars
from collections.abc import Sequence

from sqlalchemy import ScalarSelect, and_, bindparam, exists, func, literal_column, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.models import Account, Invoice, InvoiceArchive

# Finalized invoices: a draft can still change, so it has no document worth keeping yet.
ARCHIVABLE_STATUSES = ("open", "paid", "uncollectible", "void")
_REQUESTED = "invoices_to_archive"


# What `kept_copy_status` gives for a copy kept with no invoice status (its row's is null).
KEPT_WITHOUT_STATUS = ""


def kept_copy_status() -> ScalarSelect[str | None]:
    """The status the kept copy of the invoice in the enclosing statement (a statement on
    `invoices`) was made at, `KEPT_WITHOUT_STATUS` when it was not recorded, NULL when none
    is kept: to read beside the invoice in one statement."""
    # Named by hand: SQLAlchemy does not correlate a subquery in an INSERT's RETURNING.
    return (
        select(func.coalesce(InvoiceArchive.invoice_status, KEPT_WITHOUT_STATUS))
        .where(InvoiceArchive.stripe_invoice_id == literal_column("invoices.stripe_invoice_id"))
        .scalar_subquery()
    )


def archive_standing(session: Session, *, invoice_id: str) -> tuple[str | None, str | None] | None:
    """(the invoice's status, `kept_copy_status`) in one statement; None for an unknown
    invoice."""
    row = session.execute(_ARCHIVE_STANDING, {"invoice_id": invoice_id}).first()
    return None if row is None else (row[0], row[1])


# Built once: every archive request asks (docs/decisions/0007).
_ARCHIVE_STANDING = select(Invoice.status, kept_copy_status()).where(
    Invoice.stripe_invoice_id == bindparam("invoice_id")
)


def request_archive(session: Session, invoice: Invoice, *, kept_status: str | None) -> None:
    """Note the invoice for archiving after the commit, if it needs a (better) copy.
    `kept_status`: what `kept_copy_status` read beside the invoice (None: no copy kept)."""
    if invoice.status not in ARCHIVABLE_STATUSES:
        return
    if kept_status is not None and not needs_new_copy(
        kept_status=kept_status or None, status=invoice.status
    ):
        return
    # With the context it was noted in: the publish names the event whose work asked for it.
    requested = session.info.setdefault(_REQUESTED, {})
    requested.setdefault(invoice.stripe_invoice_id, contextvars.copy_context())


def needs_new_copy(*, kept_status: str | None, status: str | None) -> bool:
    """A copy made before the invoice was paid shows an amount due: the paid one replaces it."""
    return status == "paid" and kept_status != "paid"


def take_requested_archives(session: Session) -> list[tuple[str, contextvars.Context]]:
    """The invoice ids noted in this session's transaction, each with the context it was
    noted in (and forget them)."""
    return sorted(session.info.pop(_REQUESTED, {}).items(), key=lambda item: item[0])


def forget_requested_archives(session: Session) -> None:
    session.info.pop(_REQUESTED, None)


def find_archive(session: Session, *, invoice_id: str) -> InvoiceArchive | None:
    return session.scalar(
        select(InvoiceArchive).where(InvoiceArchive.stripe_invoice_id == invoice_id)
    )


def record_archive(
    session: Session,
    *,
    invoice_id: str,
    store_key: str,
    sha256: str,
    size_bytes: int,
    source: str,
    invoice_status: str | None,
) -> bool:
    """Record the kept copy; a second copy replaces the first only when it is the paid one
    replacing an earlier status's. False when nothing changed (a duplicate task)."""
    values = {
        "store_key": store_key,
        "sha256": sha256,
        "size_bytes": size_bytes,
        "source": source,
        "invoice_status": invoice_status,
    }
    statement = insert(InvoiceArchive).values(stripe_invoice_id=invoice_id, **values)
    replaced = (
        and_(
            statement.excluded.invoice_status == "paid",
            or_(
                InvoiceArchive.invoice_status.is_(None),
                InvoiceArchive.invoice_status != "paid",
            ),
        )
        if invoice_status == "paid"
        else None
    )
    if replaced is None:
        statement = statement.on_conflict_do_nothing(
            index_elements=[InvoiceArchive.stripe_invoice_id]
        )
    else:
        statement = statement.on_conflict_do_update(
            index_elements=[InvoiceArchive.stripe_invoice_id],
            set_={**{k: statement.excluded[k] for k in values}, "created_at": func.now()},
            where=replaced,
        )
    return bool(session.execute(statement.returning(InvoiceArchive.id)).first())


def invoices_missing_archive(
    session: Session, *, after_id: int = 0, limit: int = 1000
) -> Sequence[tuple[int, str]]:
    """(row id, invoice id) of finalized invoices with no kept copy, or only one from before
    they were paid, in row order from `after_id`: a page of the nightly fill."""
    kept = InvoiceArchive.stripe_invoice_id == Invoice.stripe_invoice_id
    missing = or_(
        ~exists().where(kept),
        and_(
            Invoice.status == "paid",
            exists().where(
                kept,
                or_(
                    InvoiceArchive.invoice_status.is_(None), InvoiceArchive.invoice_status != "paid"
                ),
            ),
        ),
    )
    rows = session.execute(
        select(Invoice.id, Invoice.stripe_invoice_id)
        .where(Invoice.id > after_id, Invoice.status.in_(ARCHIVABLE_STATUSES), missing)
        .order_by(Invoice.id)
        .limit(limit)
    ).all()
    return [(row.id, row.stripe_invoice_id) for row in rows]


def invoice_of_user(session: Session, *, invoice_id: str, user_id: str) -> Invoice | None:
    """The invoice if it belongs to one of the user's accounts; None otherwise."""
    return session.scalar(
        select(Invoice)
        .join(Account, Account.id == Invoice.account_id)
        .where(Invoice.stripe_invoice_id == invoice_id, Account.user_id == user_id)
    )
