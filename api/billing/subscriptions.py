"""Plan changes and cancellations: Stripe does them, and what Stripe answers is stored through
the event handlers' own functions (ordering guard, history with cause `api`, upgrade credits,
emails), so the webhook that follows finds nothing left to do."""

from __future__ import annotations

import stripe
from sqlalchemy.orm import Session

from core.plans import Plan
from db.locks import lock_customer
from db.models import Account, Subscription
from db.subscriptions import Cause, SyncResult
from tasks.events.handlers.subscriptions import (
    apply_stripe_subscription,
    notify_canceled,
    plan_change,
)

# The difference is invoiced and charged now, and a declined card refuses the change (402)
# instead of leaving the subscription `past_due`: an upgrade's credits are granted at once, so
# it is paid for at once.
PRORATION_BEHAVIOR = "always_invoice"
PAYMENT_BEHAVIOR = "error_if_incomplete"


def change_plan(
    session: Session,
    client: stripe.StripeClient,
    *,
    account: Account,
    subscription: Subscription,
    plan: Plan,
    idempotency_key: str | None,
) -> SyncResult:
    """Move the subscription's one item to the plan's price, with proration."""
    assert plan.price_id is not None
    current = client.v1.subscriptions.retrieve(subscription.stripe_subscription_id)
    items = current.to_dict().get("items", {}).get("data") or []
    if not items:
        raise ValueError(f"subscription {subscription.stripe_subscription_id} has no items")
    options: stripe.RequestOptions = {}
    if idempotency_key:
        options["idempotency_key"] = f"change-plan:{subscription.id}:{idempotency_key}"[:255]
    updated = client.v1.subscriptions.update(
        subscription.stripe_subscription_id,
        params={
            "items": [{"id": items[0]["id"], "price": plan.price_id}],
            "proration_behavior": PRORATION_BEHAVIOR,
            "payment_behavior": PAYMENT_BEHAVIOR,
        },
        options=options,
    )
    old_price = subscription.price_id
    lock_customer(session, account.stripe_customer_id)
    result = apply_stripe_subscription(
        session, account=account, subscription=updated.to_dict(), as_of=None, cause=Cause.API
    )
    if old_price and result.applied:
        plan_change(session, account=account, subscription=updated.to_dict(), old_price=old_price)
    return result


def cancel_subscription(
    session: Session,
    client: stripe.StripeClient,
    *,
    account: Account,
    subscription: Subscription,
    at_period_end: bool,
) -> SyncResult:
    """Cancel at the end of the paid period (the plan stays until then), or now."""
    if at_period_end:
        answer = client.v1.subscriptions.update(
            subscription.stripe_subscription_id, params={"cancel_at_period_end": True}
        )
    else:
        answer = client.v1.subscriptions.cancel(subscription.stripe_subscription_id)
    canceled = answer.to_dict()
    lock_customer(session, account.stripe_customer_id)
    result = apply_stripe_subscription(
        session, account=account, subscription=canceled, as_of=None, cause=Cause.API
    )
    if canceled.get("status") == "canceled" and result.subscription.status == "canceled":
        notify_canceled(session, account=account, result=result)
    return result
