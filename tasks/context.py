"""The worker's `BillingContext`: built once per process from the settings, and handed to
every billing function the event tasks, the reconciliation and the dispute reminders call."""

from __future__ import annotations

from functools import lru_cache

from billing.context import BillingContext
from core.settings import get_settings
from core.task_names import SEND_EMAIL
from tasks import batched_publishing

# Emails per `emails.send` message when a batch of events hands them on: small enough that
# the emails pool's threads share a batch's receipts (and a slow SMTP server's waits).
EMAILS_PER_MESSAGE = 5


def publish_email(email_log_id: int) -> None:
    """Hand a committed `email_log` row to `emails.send` (with its batch's other emails,
    inside a batch of events)."""
    batched_publishing.publish(SEND_EMAIL, email_log_id, chunk=EMAILS_PER_MESSAGE)


@lru_cache(maxsize=1)
def worker_context() -> BillingContext:
    """The process's context: its settings, catalogue and Stripe client (None while no key
    is set: the rules then work from the event alone)."""
    return BillingContext.from_settings(get_settings(), send_email=publish_email)
