"""Plan changes and cancellations a user asks for: Stripe does them, and what Stripe answers
is stored through the events' own functions (ordering guard, history with cause `api`, the
proration's invoice and the upgrade credits it paid for, emails), so the webhooks that follow
find nothing left to do.

The customer's lock is taken before the Stripe call and held until the answer is stored:
two requests of one user (a double click on two plans, a change during a cancel) then reach
Stripe and the database in the same order, and no webhook of this customer is applied in
between. The answer is stamped with the time the call was sent: Stripe's state is at least
that new, and an event Stripe makes from then on (the same second included) still applies."""

from __future__ import annotations

import hashlib
from datetime import datetime

import stripe
from sqlalchemy.orm import Session

from billing.context import BillingContext
from billing.invoices import store_answered_invoice
from billing.subscriptions import apply_stripe_subscription, notify_canceled, plan_change
from core.plans import Plan
from db.locks import lock_customer
from db.models import Account, Subscription
from db.subscriptions import LIVE_STATUSES, Cause, SyncResult

# The difference is invoiced and charged now, and a declined card refuses the change (402)
# instead of leaving the subscription `past_due`. An upgrade's credits are granted once the
# invoice of its proration is paid; with these settings Stripe's answer is that invoice, paid
# (expanded as `latest_invoice`), so they are granted in the same request.
PRORATION_BEHAVIOR = "always_invoice"
PAYMENT_BEHAVIOR = "error_if_incomplete"
EXPAND = ["latest_invoice"]


class NoLongerLive(Exception):
    """The subscription ended while the request waited for the customer's lock."""


class AlreadyOnPlan(Exception):
    """Another request moved the subscription to this plan while this one waited."""


def change_plan(
    session: Session,
    ctx: BillingContext,
    *,
    account: Account,
    subscription: Subscription,
    plan: Plan,
    idempotency_key: str | None,
) -> SyncResult:
    """Move the subscription's one item to the plan's price, with proration."""
    if plan.price_id is None:
        raise ValueError(f"plan {plan.id} has no Stripe price")
    client = ctx.require_stripe()
    sent_at = _lock_and_stamp(session, ctx, account=account, subscription=subscription)
    if subscription.plan == plan.id:
        raise AlreadyOnPlan(plan.id)
    current = client.v1.subscriptions.retrieve(subscription.stripe_subscription_id)
    items = current.to_dict().get("items", {}).get("data") or []
    if not items:
        raise ValueError(f"subscription {subscription.stripe_subscription_id} has no items")
    options: stripe.RequestOptions = {}
    if idempotency_key:
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()
        options["idempotency_key"] = f"change-plan:{subscription.stripe_subscription_id}:{digest}"
    old_price = subscription.price_id
    updated = client.v1.subscriptions.update(
        subscription.stripe_subscription_id,
        params={
            "items": [{"id": items[0]["id"], "price": plan.price_id}],
            "proration_behavior": PRORATION_BEHAVIOR,
            "payment_behavior": PAYMENT_BEHAVIOR,
            "expand": EXPAND,
        },
        options=options,
    ).to_dict()
    result = apply_stripe_subscription(
        session, ctx, account=account, subscription=updated, as_of=sent_at, cause=Cause.API
    )
    if old_price and result.applied:
        # The proration's invoice first: the upgrade recorded next finds it paid.
        store_answered_invoice(
            session, ctx, account=account, invoice=updated.get("latest_invoice"), as_of=sent_at
        )
        plan_change(session, ctx, account=account, subscription=updated, old_price=old_price)
    return result


def cancel_subscription(
    session: Session,
    ctx: BillingContext,
    *,
    account: Account,
    subscription: Subscription,
    at_period_end: bool,
) -> SyncResult:
    """Cancel at the end of the paid period (the plan stays until then), or now."""
    client = ctx.require_stripe()
    sent_at = _lock_and_stamp(session, ctx, account=account, subscription=subscription)
    if at_period_end:
        answer = client.v1.subscriptions.update(
            subscription.stripe_subscription_id, params={"cancel_at_period_end": True}
        )
    else:
        answer = client.v1.subscriptions.cancel(subscription.stripe_subscription_id)
    canceled = answer.to_dict()
    result = apply_stripe_subscription(
        session, ctx, account=account, subscription=canceled, as_of=sent_at, cause=Cause.API
    )
    if canceled.get("status") == "canceled" and result.subscription.status == "canceled":
        notify_canceled(session, ctx, account=account, result=result)
    return result


def _lock_and_stamp(
    session: Session, ctx: BillingContext, *, account: Account, subscription: Subscription
) -> datetime:
    """Take the customer's lock; the time the call is sent, never older than what is stored:
    nothing else writes this customer while the lock is held, so Stripe's answer is newer
    than anything stored, whatever the skew between Stripe's clock and ours."""
    lock_customer(session, account.stripe_customer_id)
    # What the route read before the lock may be out of date: check again on what is stored.
    session.refresh(subscription)
    if subscription.status not in LIVE_STATUSES:
        raise NoLongerLive(subscription.stripe_subscription_id)
    # Stripe's `created` has whole seconds.
    return max(ctx.now().replace(microsecond=0), subscription.state_as_of)
