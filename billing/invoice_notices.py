"""Invoices before they are paid: `invoice.finalized` stores the invoice;
`invoice.payment_action_required` asks the customer to confirm a payment (3-D Secure);
`invoice.upcoming` gives notice of a renewal.

`invoice.finalized` stores through `db.invoices.store_invoice`, the same function the paid
events use, so whatever is hooked there (the invoice archive) runs for finalized invoices
too; parts of the invoice already paid (`invoice_payment.paid`) are settled against it.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from billing.accounts import adopt_customer
from billing.context import BillingContext
from billing.events import StripeEvent
from billing.invoices import SETTLED_INVOICE_STATUSES
from billing.notices import notify_customer
from billing.partial_payments import grant_if_paid_in_full
from core.stripe_objects import (
    invoice_billing_months,
    invoice_period,
    invoice_price_id,
    invoice_subscription_id,
    unix_time,
)
from db.invoices import store_invoice
from db.subscriptions import find_subscription

log = logging.getLogger("billing.invoice_notices")

# Plans billed this many months at a time or more get a renewal notice whatever the settings:
# auto-renewal laws (California's, the EU's consumer rules) ask for one before a yearly charge.
YEARLY_MONTHS = 12


def invoice_finalized(session: Session, ctx: BillingContext, event: StripeEvent) -> None:
    """`invoice.finalized`: store the invoice; settle parts of it paid before it came."""
    invoice = event.object
    account = adopt_customer(session, ctx, customer_id=event.customer_id or "", source=invoice)
    plan = ctx.catalogue.plan_for_price(invoice_price_id(invoice))
    stored = store_invoice(
        session, account=account, invoice=invoice, plan=plan.id if plan else None, as_of=event.time
    )
    grant_if_paid_in_full(session, ctx, invoice=stored, stripe_event_id=event.id)


def invoice_payment_action_required(
    session: Session, ctx: BillingContext, event: StripeEvent
) -> None:
    """`invoice.payment_action_required`: store, and the `payment_action_required` email with
    the hosted invoice page (where the customer confirms), once per invoice and attempt."""
    invoice = event.object
    account = adopt_customer(session, ctx, customer_id=event.customer_id or "", source=invoice)
    stored = store_invoice(session, account=account, invoice=invoice, plan=None, as_of=event.time)
    if stored.status in SETTLED_INVOICE_STATUSES or stored.state_as_of > event.time:
        log.info("invoice %s settled since: no payment-action email", invoice["id"])
        return
    subscription = find_subscription(session, subscription_id=stored.stripe_subscription_id or "")
    plan = ctx.catalogue.plan((subscription.plan if subscription else None) or "")
    if not stored.hosted_invoice_url:
        log.warning("invoice %s needs action but has no hosted_invoice_url", invoice["id"])
    notify_customer(
        session,
        ctx,
        account,
        key=f"payment-action-required:{invoice['id']}:{invoice.get('attempt_count') or 0}",
        template="payment_action_required",
        context={
            "amount": stored.amount_due,
            "currency": stored.currency,
            "plan_name": plan.name if plan else None,
            "invoice_number": stored.number or stored.stripe_invoice_id,
            "invoice_url": stored.hosted_invoice_url or ctx.settings.app_billing_url,
        },
    )


def invoice_upcoming(session: Session, ctx: BillingContext, event: StripeEvent) -> None:
    """`invoice.upcoming` (days before a renewal, per the account's setting): the
    `renewal_upcoming` notice for plans billed yearly or longer, and for monthly ones only
    with RENEWAL_NOTICE_MONTHLY. An upcoming invoice has no id yet, so the notice's key is
    the subscription and the period it renews."""
    invoice = event.object
    subscription_id = invoice_subscription_id(invoice)
    if subscription_id is None:
        return
    months = invoice_billing_months(invoice)
    yearly = months is not None and months >= YEARLY_MONTHS
    if not yearly and not ctx.settings.renewal_notice_monthly:
        log.info("upcoming renewal of %s bills every %s months: no notice", subscription_id, months)
        return
    account = adopt_customer(session, ctx, customer_id=event.customer_id or "", source=invoice)
    subscription = find_subscription(session, subscription_id=subscription_id)
    if subscription is not None and (
        subscription.cancel_at_period_end or subscription.status in ("canceled", "paused")
    ):
        return  # it will not renew
    start, end = invoice_period(invoice)
    plan = ctx.catalogue.plan_for_price(invoice_price_id(invoice))
    renews_at = invoice.get("next_payment_attempt") or unix_time(start)
    notify_customer(
        session,
        ctx,
        account,
        key=f"renewal-upcoming:{subscription_id}:{unix_time(start) or renews_at}",
        template="renewal_upcoming",
        context={
            "plan_name": plan.name if plan else "current",
            "amount": int(invoice.get("amount_due") or 0),
            "currency": invoice.get("currency") or "usd",
            "renews_at": renews_at,
            "period_end": unix_time(end),
            "yearly": yearly,
            "manage_url": ctx.settings.app_billing_url,
        },
    )
