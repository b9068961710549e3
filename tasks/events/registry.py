"""Every Stripe event type the platform reacts to, and why: the one list to read.

Each entry becomes a Celery task named `stripe.<type>` (see `tasks.events.tasks`), the
webhook endpoint stores any other type as `ignored`, and a test checks that the two agree.
Subscribe the Stripe webhook endpoint to exactly these types.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from tasks.events.event import StripeEvent
from tasks.events.handlers.audit_log import log_event

Handler = Callable[[Session, StripeEvent], None]

# The billing rules (issue 3) and the dispute lifecycle (issue 4) replace `log_event` type by
# type; until then every handled event runs through the whole spine and is logged.
HANDLERS: dict[str, Handler] = {
    # --- Customers: adopt a customer met for the first time and link `metadata.user_id`.
    "customer.created": log_event,
    "customer.updated": log_event,
    # --- Checkout: link the user to the customer; subscription mode stores the subscription
    # and grants the first period (keyed by the invoice id); payment mode grants a credit pack
    # (keyed by the payment intent).
    "checkout.session.completed": log_event,
    # --- Subscriptions: status, plan, period end and cancel_at_period_end, guarded by the
    # event's `created` time; an upgrade grants the credit difference once; deletion returns
    # the account to `free` and sends the cancellation email.
    "customer.subscription.created": log_event,
    "customer.subscription.updated": log_event,
    "customer.subscription.deleted": log_event,
    # --- Invoices: store the invoice; a paid one grants the period's credits once per invoice
    # id (both events name the same invoice); a failed one sends the pay-now email.
    "invoice.paid": log_event,
    "invoice.payment_succeeded": log_event,
    "invoice.payment_failed": log_event,
    # --- Refunds: a refunded payment takes back the credits it granted, once per refund.
    "charge.refunded": log_event,
    # --- Disputes: the whole chargeback lifecycle; credits are held back while a chargeback
    # is open, admins are told at once and reminded before the evidence deadline.
    "charge.dispute.created": log_event,
    "charge.dispute.updated": log_event,
    "charge.dispute.closed": log_event,
    "charge.dispute.funds_withdrawn": log_event,
    "charge.dispute.funds_reinstated": log_event,
}


def is_handled(event_type: str) -> bool:
    return event_type in HANDLERS


def task_name(event_type: str) -> str:
    return f"stripe.{event_type}"
