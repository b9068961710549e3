"""Keeping each finalized or paid invoice's PDF: Stripe's when it can be had, else our own.

`archive_invoice` is the whole job for one invoice id, whoever asks (the task published after
an invoice is stored, the nightly fill): read the invoice, get Stripe's PDF (allowed hosts,
size cap) or render the platform's, put it in the object store under a key of its own, and
record the key, sha256 and size. Its effect is keyed by the invoice id: a second run finds the
copy recorded and does nothing, unless the invoice has been paid since its copy was made.

The download happens outside any transaction: no row is locked while a server is slow. A
batch of invoices (`archive_invoices`) is read in one transaction, fetched side by side, and
recorded in one.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from contextlib import AbstractContextManager
from dataclasses import dataclass

from sqlalchemy.orm import Session

from billing.context import BillingContext
from billing.invoice_document import render_invoice_pdf
from core.object_store import ObjectStore
from core.pdf_download import DownloadPolicy, DownloadRefused, download_pdf
from db.invoice_archives import (
    ARCHIVABLE_STATUSES,
    ArchiveRecord,
    archive_standings,
    find_archive,
    invoices_with_accounts,
    needs_new_copy,
    record_archives,
)
from db.models import Account, ArchiveSource, Invoice

log = logging.getLogger("billing.invoice_archive")

Transaction = Callable[[], AbstractContextManager[Session]]


@dataclass(frozen=True, slots=True)
class ArchivedPdf:
    content: bytes
    source: ArchiveSource
    # Why Stripe's PDF was not kept (None when it was).
    reason: str | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def archive_key(invoice_id: str, status: str | None) -> str:
    """One key per invoice and status: a paid copy never overwrites the open one it replaces."""
    return f"invoices/{invoice_id}/{status or 'finalized'}.pdf"


def download_policy(ctx: BillingContext) -> DownloadPolicy:
    settings = ctx.settings
    return DownloadPolicy(
        allowed_hosts=settings.invoice_pdf_hosts,
        schemes=settings.invoice_pdf_schemes,
        max_bytes=settings.invoice_pdf_max_bytes,
        timeout_seconds=settings.invoice_pdf_timeout_seconds,
    )


def archive_invoice(
    *, ctx: BillingContext, store: ObjectStore, invoice_id: str, transaction: Transaction
) -> str:
    """Archive one invoice's PDF if it needs it; what happened, for the task's result and logs:
    `stripe`, `generated`, `unchanged` (a copy is kept), `not_archivable`, `unknown`.
    A 5xx or timeout from Stripe's file server raises `DownloadUnavailable`, to be retried."""
    outcome = archive_invoices(
        ctx=ctx, store=store, invoice_ids=[invoice_id], transaction=transaction
    )[invoice_id]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def archive_invoices(
    *,
    ctx: BillingContext,
    store: ObjectStore,
    invoice_ids: Sequence[str],
    transaction: Transaction,
    downloads: Executor | None = None,
) -> dict[str, str | Exception]:
    """`archive_invoice` for several invoices: one transaction reads them, their PDFs are
    fetched and stored (side by side on `downloads`, one after the other without it), and one
    transaction records the copies made. Each invoice's outcome, or the exception that stopped
    its copy (a download's, the store's); an exception of either transaction stops them all.

    Side by side because a PDF comes from Stripe's file server at a round trip or two of
    internet latency: one after the other, a batch of invoices holds an I/O thread (the one
    the next receipt waits for) for the sum of them."""
    with transaction() as session:
        wanted = copies_to_make(session, invoice_ids)
    outcomes: dict[str, str | Exception] = {}
    copies: dict[str, CopyToMake] = {}
    for invoice_id, wanted_copy in wanted.items():
        if isinstance(wanted_copy, str):
            outcomes[invoice_id] = wanted_copy
        else:
            copies[invoice_id] = wanted_copy
    fetched: dict[str, Future[ArchivedPdf]] = {}
    for invoice_id, copy in copies.items():
        if downloads is None:
            fetched[invoice_id] = _done(keep_copy, ctx, store, copy)
        else:
            # In the task's context: its log fields and Sentry tags go along.
            context = contextvars.copy_context()
            fetched[invoice_id] = downloads.submit(context.run, keep_copy, ctx, store, copy)
    kept: dict[str, ArchivedPdf] = {}
    for invoice_id, future in fetched.items():
        error = future.exception()
        if isinstance(error, Exception):
            outcomes[invoice_id] = error
        elif error is not None:  # KeyboardInterrupt and its kind: not an invoice's failure
            raise error
        else:
            kept[invoice_id] = future.result()
    if kept:
        with transaction() as session:
            recorded = record_archives(
                session, [archive_record(copies[i], pdf) for i, pdf in kept.items()]
            )
        for invoice_id, pdf in kept.items():
            outcomes[invoice_id] = pdf.source.value if invoice_id in recorded else "unchanged"
            if invoice_id in recorded:
                log.info(
                    "invoice %s archived (%s, %d bytes)%s",
                    invoice_id,
                    pdf.source.value,
                    len(pdf.content),
                    f": {pdf.reason}" if pdf.reason else "",
                )
    return {invoice_id: outcomes[invoice_id] for invoice_id in invoice_ids}


@dataclass(frozen=True, slots=True)
class CopyToMake:
    """An invoice whose PDF must be kept (none is, or only as it was before it was paid)."""

    invoice: Invoice
    account: Account

    @property
    def key(self) -> str:
        return archive_key(self.invoice.stripe_invoice_id, self.invoice.status)


def copies_to_make(session: Session, invoice_ids: Sequence[str]) -> dict[str, CopyToMake | str]:
    """By invoice id: the invoice and its account when it needs a copy; else the outcome,
    `unknown`, `not_archivable` or `unchanged`. Two statements for the whole batch."""
    # The first answers most requests (an invoice finalized and paid in one burst asks up to
    # three times for one copy); the rows are read only for the copies to make.
    standings = archive_standings(session, invoice_ids=invoice_ids)
    wanted: dict[str, CopyToMake | str] = {}
    for invoice_id in invoice_ids:
        standing = standings.get(invoice_id)
        if standing is None:
            wanted[invoice_id] = "unknown"
            continue
        status, kept_status = standing
        if status not in ARCHIVABLE_STATUSES:
            wanted[invoice_id] = "not_archivable"
        elif kept_status is not None and not needs_new_copy(
            kept_status=kept_status or None, status=status
        ):
            wanted[invoice_id] = "unchanged"
    to_read = [invoice_id for invoice_id in invoice_ids if invoice_id not in wanted]
    if to_read:
        rows = invoices_with_accounts(session, invoice_ids=to_read)
        for invoice_id in to_read:
            invoice, account = rows[invoice_id]
            wanted[invoice_id] = CopyToMake(invoice=invoice, account=account)
    return wanted


def keep_copy(ctx: BillingContext, store: ObjectStore, copy: CopyToMake) -> ArchivedPdf:
    """Get the PDF and put it in the store (no transaction open: the download may be slow)."""
    pdf = obtain_pdf(ctx, invoice=copy.invoice, account=copy.account)
    store.put(copy.key, pdf.content, content_type="application/pdf")
    return pdf


def archive_record(copy: CopyToMake, pdf: ArchivedPdf) -> ArchiveRecord:
    """What to record of the copy put in the store."""
    return ArchiveRecord(
        invoice_id=copy.invoice.stripe_invoice_id,
        store_key=copy.key,
        sha256=pdf.sha256,
        size_bytes=len(pdf.content),
        source=pdf.source.value,
        invoice_status=copy.invoice.status,
    )


def _done(work: Callable[..., ArchivedPdf], *args: object) -> Future[ArchivedPdf]:
    """`work(*args)` run here and now, as a finished future (its result or its exception)."""
    future: Future[ArchivedPdf] = Future()
    try:
        future.set_result(work(*args))
    except Exception as exc:
        future.set_exception(exc)
    return future


def obtain_pdf(ctx: BillingContext, *, invoice: Invoice, account: Account) -> ArchivedPdf:
    """Stripe's PDF, or the platform's own where Stripe's cannot be had."""
    if not invoice.invoice_pdf:
        return _generated(ctx, invoice, account, reason="Stripe gave no invoice_pdf")
    try:
        content = download_pdf(invoice.invoice_pdf, download_policy(ctx))
    except DownloadRefused as refused:
        return _generated(ctx, invoice, account, reason=f"Stripe's PDF refused: {refused}")
    return ArchivedPdf(content=content, source=ArchiveSource.STRIPE)


def _generated(
    ctx: BillingContext, invoice: Invoice, account: Account, *, reason: str
) -> ArchivedPdf:
    content = render_invoice_pdf(
        invoice=invoice,
        account=account,
        product_name=ctx.settings.product_name,
        support_email=ctx.settings.support_address,
    )
    return ArchivedPdf(content=content, source=ArchiveSource.GENERATED, reason=reason)


class ArchiveMismatch(Exception):
    """The stored bytes are not the ones recorded (their sha256 differs)."""


def read_archived_pdf(session: Session, store: ObjectStore, *, invoice_id: str) -> bytes | None:
    """The kept PDF of an invoice, checked against its recorded sha256; None when it has none
    yet. `ObjectNotFound` when the store lost it, `ArchiveMismatch` when it changed."""
    kept = find_archive(session, invoice_id=invoice_id)
    if kept is None:
        return None
    content = store.get(kept.store_key)
    if hashlib.sha256(content).hexdigest() != kept.sha256:
        raise ArchiveMismatch(f"{kept.store_key} does not match its sha256")
    return content
