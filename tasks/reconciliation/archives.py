"""The nightly fill of the invoice archive: every finalized or paid invoice still without a
kept PDF (its task lost to a broker outage, retries run out, stored before the archive
existed) gets `billing.archive_invoice_pdf` queued. The task is keyed by the invoice id, so
one queued twice archives once."""

from __future__ import annotations

import logging
from collections.abc import Callable

from db.invoice_archives import invoices_missing_archive
from db.session import transaction

log = logging.getLogger(__name__)

PAGE_SIZE = 1000


def queue_missing_archives(publish: Callable[[str], None]) -> int:
    """Publish the archive task of every invoice missing its copy; how many were queued."""
    queued = 0
    after_id = 0
    while True:
        with transaction() as session:
            page = invoices_missing_archive(session, after_id=after_id, limit=PAGE_SIZE)
        for row_id, invoice_id in page:
            publish(invoice_id)
            queued += 1
            after_id = row_id
        if len(page) < PAGE_SIZE:
            break
    if queued:
        log.info("nightly fill: %d invoice archives queued", queued)
    return queued
