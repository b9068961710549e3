"""Keeping each finalized or paid invoice's PDF: Stripe's when it can be had, else our own.

`archive_invoice` is the whole job for one invoice id, whoever asks (the task published after
an invoice is stored, the nightly fill): read the invoice, get Stripe's PDF (allowed hosts,
size cap) or render the platform's, put it in the object store under a key of its own, and
record the key, sha256 and size. Its effect is keyed by the invoice id: a second run finds the
copy recorded and does nothing, unless the invoice has been paid since its copy was made.

The download happens outside any transaction: no row is locked while a server is slow.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from sqlalchemy.orm import Session

from billing.context import BillingContext
from billing.invoice_document import render_invoice_pdf
from core.object_store import ObjectStore
from core.pdf_download import DownloadPolicy, DownloadRefused, download_pdf
from db.invoice_archives import (
    ARCHIVABLE_STATUSES,
    archive_standing,
    find_archive,
    needs_new_copy,
    record_archive,
)
from db.invoices import find_invoice
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
    with transaction() as session:
        # One statement answers most requests (an invoice finalized and paid in one burst
        # asks up to three times for one copy); the rows are read only for a copy to make.
        standing = archive_standing(session, invoice_id=invoice_id)
        if standing is None:
            return "unknown"
        status, kept_status = standing
        if status not in ARCHIVABLE_STATUSES:
            return "not_archivable"
        if kept_status is not None and not needs_new_copy(
            kept_status=kept_status or None, status=status
        ):
            return "unchanged"
        invoice = find_invoice(session, invoice_id=invoice_id)
        assert invoice is not None
        account = session.get(Account, invoice.account_id)
        assert account is not None
    pdf = obtain_pdf(ctx, invoice=invoice, account=account)
    key = archive_key(invoice_id, invoice.status)
    store.put(key, pdf.content, content_type="application/pdf")
    with transaction() as session:
        recorded = record_archive(
            session,
            invoice_id=invoice_id,
            store_key=key,
            sha256=pdf.sha256,
            size_bytes=len(pdf.content),
            source=pdf.source.value,
            invoice_status=invoice.status,
        )
    if not recorded:
        return "unchanged"
    log.info(
        "invoice %s archived (%s, %d bytes)%s",
        invoice_id,
        pdf.source.value,
        len(pdf.content),
        f": {pdf.reason}" if pdf.reason else "",
    )
    return pdf.source.value


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
