"""Every Stripe event type the platform reacts to, and why: the one list to read.

Each entry maps the type to the billing function that applies it, called as
`(session, ctx, event)` inside the transaction that marks the stored event processed, under
the customer's lock. The worker makes one Celery task per entry (`stripe.<type>`, see
`tasks.events`), the webhook endpoint stores any other type as `ignored`, and a test checks
that the two agree. Subscribe the Stripe webhook endpoint to exactly these types.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from billing.accounts import customer_changed
from billing.checkout import checkout_completed
from billing.context import BillingContext
from billing.disputes import dispute_event
from billing.events import StripeEvent
from billing.fraud_warnings import fraud_warning_event
from billing.invoices import invoice_paid, invoice_payment_failed
from billing.purchases import charge_succeeded
from billing.refunds import charge_refunded
from billing.subscriptions import subscription_changed

Handler = Callable[[Session, BillingContext, StripeEvent], None]

HANDLERS: dict[str, Handler] = {
    # --- Customers: adopt a customer met for the first time and link `metadata.user_id`.
    "customer.created": customer_changed,
    "customer.updated": customer_changed,
    # --- Checkout: link the user to the customer; subscription mode stores the subscription
    # and grants the first period (keyed by the invoice id); payment mode grants a credit pack
    # (keyed by the payment intent).
    "checkout.session.completed": checkout_completed,
    # A delayed payment method (SEPA, ACH, Bacs) completes the session unpaid; this one says
    # the money arrived, and grants what the session bought under the same keys.
    "checkout.session.async_payment_succeeded": checkout_completed,
    # --- Subscriptions: status, plan, period end and cancel_at_period_end, guarded by the
    # event's `created` time; an upgrade is recorded, and its credit difference is granted
    # once the invoice carrying its proration is paid (or nothing is due); deletion returns
    # the account to `free` and sends the cancellation email.
    "customer.subscription.created": subscription_changed,
    "customer.subscription.updated": subscription_changed,
    "customer.subscription.deleted": subscription_changed,
    # --- Invoices: store the invoice; a paid one grants the period's credits once per invoice
    # id (both events name the same invoice) and grants the upgrades whose proration it paid;
    # a failed one sends the pay-now email.
    "invoice.paid": invoice_paid,
    "invoice.payment_succeeded": invoice_paid,
    "invoice.payment_failed": invoice_payment_failed,
    # --- Refunds: a refunded payment takes back the credits it granted, once per refund.
    "charge.refunded": charge_refunded,
    # --- Disputes: the whole chargeback lifecycle; credits are held back while a chargeback
    # is open, admins are told at once and reminded before the evidence deadline.
    "charge.dispute.created": dispute_event,
    "charge.dispute.updated": dispute_event,
    "charge.dispute.closed": dispute_event,
    "charge.dispute.funds_withdrawn": dispute_event,
    "charge.dispute.funds_reinstated": dispute_event,
    # --- Early fraud warnings (Visa TC40, Mastercard SAFE): most become fraud disputes. Hold
    # the payment's credits (keyed by the warning id, replaced by a later dispute's hold),
    # alert admins, and with EFW_ACTION refund the charge before the dispute comes.
    "radar.early_fraud_warning.created": fraud_warning_event,
    "radar.early_fraud_warning.updated": fraud_warning_event,
    # --- Payments: the card (fingerprint, brand, network) and the buyer of each successful
    # charge, for dispute evidence (Visa CE 3.0) and the networks' monitoring ratios.
    "charge.succeeded": charge_succeeded,
}


def is_handled(event_type: str) -> bool:
    return event_type in HANDLERS
