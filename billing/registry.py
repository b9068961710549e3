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

from billing.accounts import customer_changed, customer_deleted
from billing.checkout import checkout_completed
from billing.checkout_failures import checkout_async_payment_failed, checkout_expired
from billing.context import BillingContext
from billing.credit_notes import credit_note_event
from billing.disputes import dispute_event
from billing.events import StripeEvent
from billing.fraud_warnings import fraud_warning_event
from billing.invoice_notices import (
    invoice_finalized,
    invoice_payment_action_required,
    invoice_upcoming,
)
from billing.invoices import invoice_paid, invoice_payment_failed
from billing.partial_payments import invoice_payment_paid
from billing.purchases import charge_succeeded
from billing.refunds import charge_refunded
from billing.subscription_notices import (
    subscription_paused,
    subscription_resumed,
    trial_will_end,
)
from billing.subscriptions import subscription_changed

Handler = Callable[[Session, BillingContext, StripeEvent], None]

HANDLERS: dict[str, Handler] = {
    # --- Customers: adopt a customer met for the first time and link `metadata.user_id`.
    "customer.created": customer_changed,
    "customer.updated": customer_changed,
    # A deleted customer's account is marked deleted and its user unlinked (the user can come
    # back as a new customer); its ledger, invoices and history are kept for the audit.
    "customer.deleted": customer_deleted,
    # --- Checkout: link the user to the customer; subscription mode stores the subscription
    # and grants the first period (keyed by the invoice id); payment mode grants a credit pack
    # (keyed by the payment intent).
    "checkout.session.completed": checkout_completed,
    # A delayed payment method (SEPA, ACH, Bacs) completes the session unpaid; this one says
    # the money arrived, and grants what the session bought under the same keys.
    "checkout.session.async_payment_succeeded": checkout_completed,
    # ...and this one that it never will: nothing granted, the `payment_failed` email names
    # what the session was for.
    "checkout.session.async_payment_failed": checkout_async_payment_failed,
    # An abandoned Checkout: kept and counted; a recovery email only with
    # CHECKOUT_RECOVERY_EMAILS and the customer's consent to promotions in that session.
    "checkout.session.expired": checkout_expired,
    # --- Subscriptions: status, plan, period end and cancel_at_period_end, guarded by the
    # event's `created` time; an upgrade is recorded, and its credit difference is granted
    # once the invoice carrying its proration is paid (or nothing is due); deletion returns
    # the account to `free` and sends the cancellation email.
    "customer.subscription.created": subscription_changed,
    "customer.subscription.updated": subscription_changed,
    "customer.subscription.deleted": subscription_changed,
    # Three days before a trial ends: the `trial_ending` email, only if the subscription is
    # still trialing and not set to cancel (a reminder that it will charge).
    "customer.subscription.trial_will_end": trial_will_end,
    # A paused subscription has no plan and earns no period credits; resuming restores them.
    # Stored like any update (the ordering guard), each with its email.
    "customer.subscription.paused": subscription_paused,
    "customer.subscription.resumed": subscription_resumed,
    # --- Invoices: store the invoice; a paid one grants the period's credits once per invoice
    # id (both events name the same invoice) and grants the upgrades whose proration it paid;
    # a failed one sends the pay-now email.
    "invoice.paid": invoice_paid,
    "invoice.payment_succeeded": invoice_paid,
    "invoice.payment_failed": invoice_payment_failed,
    # A finalized invoice is stored (through the same function as a paid one, so what hangs
    # on storing an invoice, such as its archive, runs from the start).
    "invoice.finalized": invoice_finalized,
    # The payment needs the customer (3-D Secure / SCA): email the hosted invoice link, once
    # per invoice and attempt, or the invoice waits unpaid and the plan lapses.
    "invoice.payment_action_required": invoice_payment_action_required,
    # A renewal is near: the `renewal_upcoming` notice for yearly (or longer) plans, as
    # auto-renewal laws ask; monthly ones only with RENEWAL_NOTICE_MONTHLY.
    "invoice.upcoming": invoice_upcoming,
    # One part of an invoice paid in several payments (2025-03-31.basil on): the parts are
    # kept, and the invoice grants its period once, when they add up to what it asked.
    "invoice_payment.paid": invoice_payment_paid,
    # --- Refunds: a refunded payment takes back the credits it granted, once per refund.
    "charge.refunded": charge_refunded,
    # --- Credit notes: a credit note on a paid invoice takes back its share of what the
    # invoice bought (its refund once, with the `charge.refunded` of the same refund; the part
    # credited to the balance or out of band keyed by the credit note); voiding gives it back.
    "credit_note.created": credit_note_event,
    "credit_note.voided": credit_note_event,
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
