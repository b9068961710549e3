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
from dataclasses import dataclass

from sqlalchemy import (
    ARRAY,
    ScalarSelect,
    Text,
    and_,
    any_,
    bindparam,
    exists,
    func,
    literal_column,
    or_,
    select,
    text,
)
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


def archive_standings(
    session: Session, *, invoice_ids: Sequence[str]
) -> dict[str, tuple[str | None, str | None]]:
    """(the invoice's status, `kept_copy_status`) of each known invoice, in one statement."""
    rows = session.execute(_ARCHIVE_STANDINGS, {"invoice_ids": list(invoice_ids)})
    return {row[0]: (row[1], row[2]) for row in rows}


# Built once: every archive message asks (docs/decisions/0007).
_ARCHIVE_STANDINGS = select(Invoice.stripe_invoice_id, Invoice.status, kept_copy_status()).where(
    Invoice.stripe_invoice_id == any_(bindparam("invoice_ids", type_=ARRAY(Text)))
)


def invoices_with_accounts(
    session: Session, *, invoice_ids: Sequence[str]
) -> dict[str, tuple[Invoice, Account]]:
    """The invoices and their accounts, by invoice id, in one statement."""
    rows = session.execute(_INVOICES_WITH_ACCOUNTS, {"invoice_ids": list(invoice_ids)})
    return {invoice.stripe_invoice_id: (invoice, account) for invoice, account in rows}


_INVOICES_WITH_ACCOUNTS = (
    select(Invoice, Account)
    .join(Account, Account.id == Invoice.account_id)
    .where(Invoice.stripe_invoice_id == any_(bindparam("invoice_ids", type_=ARRAY(Text))))
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


@dataclass(frozen=True, slots=True)
class ArchiveRecord:
    """A copy put in the object store, to record."""

    invoice_id: str
    store_key: str
    sha256: str
    size_bytes: int
    source: str
    invoice_status: str | None


def record_archives(session: Session, records: Sequence[ArchiveRecord]) -> set[str]:
    """Record the kept copies in one statement; a copy replaces one already recorded only when
    it is the paid one replacing an earlier status's. The invoice ids whose record changed
    (one left out: a duplicate task)."""
    if not records:
        return set()
    columns = {
        "invoice_ids": [r.invoice_id for r in records],
        "store_keys": [r.store_key for r in records],
        "sha256s": [r.sha256 for r in records],
        "sizes": [r.size_bytes for r in records],
        "sources": [r.source for r in records],
        "statuses": [r.invoice_status for r in records],
    }
    return set(session.scalars(_RECORD_ARCHIVES, columns))


# One statement for a message's copies (a batch holds an invoice once: the task dedups
# it). On the table: it loads no object (docs/decisions/0007). DO UPDATE's WHERE keeps a
# paid copy from being replaced, and anything but a paid copy from replacing.
_RECORD_ARCHIVES = text(
    f"""
    INSERT INTO {InvoiceArchive.__tablename__}
        (stripe_invoice_id, store_key, sha256, size_bytes, source, invoice_status)
    SELECT * FROM unnest(
        CAST(:invoice_ids AS text[]), CAST(:store_keys AS text[]), CAST(:sha256s AS text[]),
        CAST(:sizes AS bigint[]), CAST(:sources AS text[]), CAST(:statuses AS text[])
    )
    ON CONFLICT (stripe_invoice_id) DO UPDATE SET
        store_key = excluded.store_key,
        sha256 = excluded.sha256,
        size_bytes = excluded.size_bytes,
        source = excluded.source,
        invoice_status = excluded.invoice_status,
        created_at = now()
    WHERE excluded.invoice_status = 'paid'
        AND {InvoiceArchive.__tablename__}.invoice_status IS DISTINCT FROM 'paid'
    RETURNING stripe_invoice_id
    """
)


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
