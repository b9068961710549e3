"""The names of the Celery tasks that are published by name: by the API (which imports no
task code, only a publisher app) and by the billing rules' callbacks. The worker registers
its tasks under these same names."""

from __future__ import annotations

SEND_EMAIL = "emails.send"
RECONCILE_SUBSCRIPTIONS = "billing.reconcile_subscriptions"
# A dry run for the console: its report is the task's result (the one task whose result is kept).
RECONCILE_DRY_RUN = "billing.reconcile_dry_run"
ENQUEUE_STORED_EVENTS = "billing.enqueue_stored_events"
ARCHIVE_INVOICE_PDF = "billing.archive_invoice_pdf"


def event_task_name(event_type: str) -> str:
    """The task of one handled Stripe event type: `stripe.<type>`."""
    return f"stripe.{event_type}"
