"""`invoice.paid`, `invoice.payment_succeeded`: store the invoice, grant the period's credits
once per invoice id, grant the upgrades whose proration it paid, send one receipt.
`invoice.payment_failed`: past due, and a pay-now email.

Both paid events (and a subscription Checkout's `checkout.session.completed`) name the same
first invoice, so the invoice id is the grant's key and the receipt's.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from billing.accounts import adopt_customer
from billing.context import BillingContext
from billing.events import NotYetKnown, StripeEvent
from billing.notices import notify_customer
from billing.plans import plan_for_price
from billing.settlement import bring_ledger_to
from billing.subscription_notices import period_credits_withheld
from billing.subscriptions import apply_stripe_subscription, fetch_subscription, mark_past_due
from billing.upgrades import settle_upgrades
from core.plans import Plan
from core.stripe_objects import (
    StripeDict,
    invoice_grants_credits,
    invoice_payment_ids,
    invoice_price_id,
    invoice_subscription_id,
    unix_time,
)
from db import ledger
from db.invoices import mark_paid_applied, paid_applied_as_of, store_invoice
from db.models import Account, CreditKind, Invoice
from db.subscriptions import Cause, find_subscription

log = logging.getLogger("billing.invoices")

# A failure notice about one of these would ask the customer to pay what needs no paying.
SETTLED_INVOICE_STATUSES = ("paid", "void", "uncollectible")


def invoice_paid(session: Session, ctx: BillingContext, event: StripeEvent) -> None:
    """`invoice.paid` / `invoice.payment_succeeded`: store, grant, settle upgrades, receipt.
    The second of the pair (or a replay) finds the first's description applied, and stops."""
    invoice = event.object
    applied = paid_applied_as_of(session, invoice_id=invoice["id"])
    if applied is not None and applied >= event.time:
        # Everything it would do is done and keyed: the grant and the receipt by the invoice,
        # the upgrades and refund shares by theirs; the stored description is as new.
        return
    account = adopt_customer(session, ctx, customer_id=event.customer_id or "", source=invoice)
    subscription_id = invoice_subscription_id(invoice)
    price_id = invoice_price_id(invoice)
    if subscription_id and price_id is None:
        price_id = subscription_price(
            session, ctx, account=account, subscription_id=subscription_id
        )
    plan = (
        plan_for_price(ctx, price_id, where=f"invoice {invoice['id']}") if subscription_id else None
    )
    stored = store_invoice(
        session,
        account=account,
        invoice=invoice,
        plan=plan.id if plan else None,
        as_of=event.time,
    )
    granted = 0
    intent, charge = invoice_payment_ids(invoice)
    # A paused subscription has no plan, and a period begun while paused buys no credits.
    withheld = period_credits_withheld(
        session, subscription_id=subscription_id, period_start=stored.period_start
    )
    if subscription_id and plan and invoice_grants_credits(invoice) and not withheld:
        granted = grant_period_credits(
            session,
            account=account,
            invoice_id=invoice["id"],
            plan=plan,
            stripe_event_id=event.id,
            payment_intent_id=intent,
            charge_id=charge,
        )
    # A paid invoice carrying an upgrade's proration (its own, or a renewal's) pays for it.
    granted += settle_upgrades(session, ctx, invoice=stored, stripe_event_id=event.id)
    # Refunds and disputes of this payment that came first take their share now.
    bring_ledger_to(
        session,
        payment_intent_id=intent or stored.payment_intent_id,
        charge_id=charge or stored.charge_id,
        invoice_id=invoice["id"],
        stripe_event_id=event.id,
        invoice_read=True,
    )
    notify_customer(
        session,
        ctx,
        account,
        key=f"receipt:{invoice['id']}",
        template="payment_succeeded",
        context=_receipt_context(stored, plan, granted=granted),
    )
    mark_paid_applied(session, invoice_id=invoice["id"], as_of=event.time)


def _receipt_context(stored: Invoice, plan: Plan | None, *, granted: int) -> dict[str, object]:
    """What the `payment_succeeded` email shows of a paid invoice."""
    return {
        "amount": stored.amount_paid,
        "currency": stored.currency,
        "plan_name": plan.name if plan else "one-time",
        "credits_granted": granted,
        "period_start": unix_time(stored.period_start),
        "period_end": unix_time(stored.period_end),
        "invoice_number": stored.number or stored.stripe_invoice_id,
        "invoice_url": stored.hosted_invoice_url,
        "invoice_pdf": stored.invoice_pdf,
    }


def store_answered_invoice(
    session: Session,
    ctx: BillingContext,
    *,
    account: Account,
    invoice: StripeDict | str | None,
    as_of: datetime,
) -> Invoice | None:
    """Store an invoice Stripe returned expanded in an answer to our own call (a plan change's
    `latest_invoice`), and grant the upgrades it paid for; an unexpanded id is left to the
    invoice's own events. The receipt and any period's credits are left to them too."""
    if not isinstance(invoice, dict) or invoice.get("object") != "invoice":
        return None
    plan = ctx.catalogue.plan_for_price(invoice_price_id(invoice))
    stored = store_invoice(
        session, account=account, invoice=invoice, plan=plan.id if plan else None, as_of=as_of
    )
    settle_upgrades(session, ctx, invoice=stored, stripe_event_id=None)
    return stored


def subscription_price(
    session: Session, ctx: BillingContext, *, account: Account, subscription_id: str
) -> str:
    """The price of an invoice whose lines do not say it: the stored subscription's, else
    Stripe's (which also stores it). A first invoice often comes before its subscription."""
    stored = find_subscription(session, subscription_id=subscription_id)
    if stored is not None and stored.price_id:
        return stored.price_id
    fetched = fetch_subscription(ctx, subscription_id)
    if fetched is None:
        raise NotYetKnown(f"the price of subscription {subscription_id} is not known yet")
    result = apply_stripe_subscription(
        session, ctx, account=account, subscription=fetched, as_of=None, cause=Cause.EVENT
    )
    if not result.subscription.price_id:
        raise ValueError(f"subscription {subscription_id} has no price")
    return result.subscription.price_id


def grant_period_credits(
    session: Session,
    *,
    account: Account,
    invoice_id: str,
    plan: Plan,
    stripe_event_id: str,
    payment_intent_id: str | None = None,
    charge_id: str | None = None,
) -> int:
    """The plan's monthly credits for the invoice's period, once per invoice id (whichever of
    the invoice events and the subscription Checkout names it first); what was granted."""
    if plan.monthly_credits <= 0:
        return 0
    entry = ledger.add_entry(
        session,
        account_id=account.id,
        kind=CreditKind.PLAN_CREDITS,
        source_id=invoice_id,
        amount=plan.monthly_credits,
        payment_intent_id=payment_intent_id,
        charge_id=charge_id,
        stripe_invoice_id=invoice_id,
        stripe_event_id=stripe_event_id,
        description=f"{plan.name} plan, invoice {invoice_id}",
    )
    if entry is None:  # granted before (the other paid event, the Checkout)
        entry = ledger.find_entry(session, kind=CreditKind.PLAN_CREDITS, source_id=invoice_id)
    return entry.amount if entry else 0


def invoice_payment_failed(session: Session, ctx: BillingContext, event: StripeEvent) -> None:
    """`invoice.payment_failed`: store, mark past due, and the pay-now email."""
    invoice = event.object
    account = adopt_customer(session, ctx, customer_id=event.customer_id or "", source=invoice)
    stored = store_invoice(session, account=account, invoice=invoice, plan=None, as_of=event.time)
    subscription_id = invoice_subscription_id(invoice)
    subscription = find_subscription(session, subscription_id=subscription_id or "")
    if subscription is not None:
        mark_past_due(
            session,
            account=account,
            subscription=subscription,
            as_of=event.time,
            stripe_event_id=event.id,
        )
    if stored.status in SETTLED_INVOICE_STATUSES or stored.state_as_of > event.time:
        log.info("invoice %s settled since this failure: no pay-now email", invoice["id"])
        return
    plan = ctx.catalogue.plan(subscription.plan or "") if subscription else None
    notify_customer(
        session,
        ctx,
        account,
        key=f"payment-failed:{invoice['id']}:{invoice.get('attempt_count') or 0}",
        template="payment_failed",
        context={
            "amount": stored.amount_due,
            "currency": stored.currency,
            "plan_name": plan.name if plan else "current",
            "purchase": None,
            "invoice_number": stored.number or stored.stripe_invoice_id,
            "failure_reason": None,
            "next_attempt": invoice.get("next_payment_attempt"),
            "invoice_url": stored.hosted_invoice_url or "",
            "retry_url": ctx.settings.app_billing_url,
        },
    )
    if not stored.hosted_invoice_url:
        log.warning("invoice %s failed without a hosted_invoice_url", invoice["id"])
