"""`billing.archive_invoice_pdf`: keep one invoice's PDF (see `billing.invoice_archive`).

Published after the commit of any worker transaction that stored a finalized or paid invoice
needing a copy (`db.invoice_archives.request_archive` notes it on the session; the listener
below publishes it), and by the nightly fill for the invoices still without one.

It runs on the `maintenance` queue (the `billing.*` route): the work is waiting on Stripe's
file server and the object store, so it belongs with the I/O-bound pool (threads, beside the
emails) and never holds a `webhooks` process while a download is slow. A 5xx, 429, timeout or
lost connection is retried with exponential backoff and full jitter, up to `TASK_MAX_RETRIES`
times (a message may carry several invoices: only those a failure stopped are retried); a
link that will never give a PDF is no failure: the platform renders its own.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import sentry_sdk
import sqlalchemy.exc
from botocore.exceptions import BotoCoreError
from celery import Task, signals
from sqlalchemy import event
from sqlalchemy.orm import Session

from billing.invoice_archive import archive_invoices
from core.object_store import ObjectStore, open_store
from core.pdf_download import DownloadUnavailable
from core.sentry import REPORTED
from core.settings import get_settings
from core.task_names import ARCHIVE_INVOICE_PDF
from db.invoice_archives import forget_requested_archives, take_requested_archives
from db.session import transaction
from tasks import batched_publishing
from tasks.celery_app import app
from tasks.context import worker_context
from tasks.transient import retry_delay

log = logging.getLogger(__name__)

TASK_NAME = ARCHIVE_INVOICE_PDF
# Invoices per message when a batch of events hands them on.
INVOICES_PER_MESSAGE = 20
# Downloads in flight at once, per worker process, for all its threads' batches: more than
# the pool's threads (8), so that a renewal day's archives finish their messages quickly and
# give the threads back to the receipts queued behind them.
PDF_DOWNLOADS_IN_PARALLEL = 16
# Also retried: the object store (a lost connection, a full or unmounted disk) or the
# database gone for a moment. An S3 refusal (a ClientError: no such bucket, access denied)
# is not: it fails at once, and the nightly fill tries again once an operator fixed it.
RETRIED = (DownloadUnavailable, BotoCoreError, OSError, sqlalchemy.exc.OperationalError)


@lru_cache(maxsize=1)
def archive_store() -> ObjectStore:
    settings = get_settings()
    return open_store(settings.invoice_archive_url, endpoint_url=settings.s3_endpoint_url)


@lru_cache(maxsize=1)
def pdf_downloads() -> ThreadPoolExecutor:
    """This process's threads for a batch's downloads (created in the process that uses them:
    a prefork child, not the parent it was forked from)."""
    return ThreadPoolExecutor(
        max_workers=PDF_DOWNLOADS_IN_PARALLEL, thread_name_prefix="invoice-pdf"
    )


@app.task(name=TASK_NAME, bind=True, max_retries=get_settings().task_max_retries)
def archive_invoice_pdf(self: Task, invoice_ids: str | list[str]) -> str | dict[str, str]:
    """Archive each invoice's PDF if it still needs it; what happened (by invoice, for a
    list). The invoices a temporary failure stopped are retried together, with backoff."""
    batch = [invoice_ids] if isinstance(invoice_ids, str) else list(dict.fromkeys(invoice_ids))
    try:
        results = archive_invoices(
            ctx=worker_context(),
            store=archive_store(),
            invoice_ids=batch,
            transaction=transaction,
            downloads=pdf_downloads() if len(batch) > 1 else None,
        )
    except RETRIED as exc:  # a transaction: the whole batch again
        results = dict.fromkeys(batch, exc)
    outcomes = {i: result for i, result in results.items() if isinstance(result, str)}
    errors = {i: result for i, result in results.items() if isinstance(result, Exception)}
    stopped = [i for i, error in errors.items() if isinstance(error, RETRIED)]
    # Not worth a retry (an S3 refusal, say): the nightly fill tries again once it is fixed.
    failed = [i for i in errors if i not in stopped]
    if stopped and self.request.retries < self.max_retries:
        for invoice_id in failed:
            log.error("invoice %s not archived: %s", invoice_id, errors[invoice_id], extra=REPORTED)
            sentry_sdk.capture_exception(errors[invoice_id])
        again = stopped[0] if isinstance(invoice_ids, str) else stopped
        raise self.retry(
            args=[again], exc=errors[stopped[0]], countdown=retry_delay(self.request.retries)
        )
    if errors:  # the task fails (Celery logs it, Sentry reports it), a lasting error first
        raise errors[(failed or stopped)[0]]
    return outcomes[invoice_ids] if isinstance(invoice_ids, str) else outcomes


def publish_archive(invoice_id: str) -> None:
    """Hand an invoice to `billing.archive_invoice_pdf` (with its batch's other invoices,
    inside a batch of events)."""
    batched_publishing.publish(ARCHIVE_INVOICE_PDF, invoice_id, chunk=INVOICES_PER_MESSAGE)


def _publish_requested_archives(session: Session) -> None:
    for invoice_id, context in take_requested_archives(session):
        try:
            context.run(publish_archive, invoice_id)
        except Exception as exc:  # the broker is down: the nightly fill finds the invoice
            log.warning("invoice %s archive left for the nightly fill: %s", invoice_id, exc)


def _forget_requested_archives(session: Session) -> None:
    forget_requested_archives(session)


def publish_archives_after_commit() -> None:
    """From now on, every commit in this process publishes the archives its transaction
    requested (once, however often this is called)."""
    if not event.contains(Session, "after_commit", _publish_requested_archives):
        event.listen(Session, "after_commit", _publish_requested_archives)
        event.listen(Session, "after_rollback", _forget_requested_archives)


@signals.worker_init.connect
def _publish_from_workers(**_: object) -> None:
    # Only workers publish: before the pool starts, so prefork children inherit it. Another
    # process that imports this module (a test, `billing reconcile`) leaves its invoices to
    # the events' own processing and the nightly fill.
    publish_archives_after_commit()
