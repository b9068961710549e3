"""Ending a customer's subscription at once because of what a payment turned out to be (a
lost chargeback, an early fraud warning refunded by policy): one Stripe call under a key of
its cause, and Stripe's answer stored through the subscription rules."""

from __future__ import annotations

import logging

import stripe
from sqlalchemy.orm import Session

from billing.context import BillingContext
from billing.subscriptions import apply_stripe_subscription
from core.stripe_objects import StripeDict
from db.models import Account
from db.subscriptions import Cause, live_subscription

log = logging.getLogger("billing.cancellation")


def cancel_live_subscription(
    session: Session,
    ctx: BillingContext,
    *,
    account_id: int,
    idempotency_key: str,
    why: str,
    stripe_event_id: str | None,
) -> bool:
    """Cancel the account's live subscription now; True if Stripe's answer was stored. The
    key (`dispute-lost:<dispute>`, `efw-cancel:<warning>`) makes a redelivered cause one
    cancellation in Stripe too."""
    subscription = live_subscription(session, account_id=account_id)
    if subscription is None:
        return False
    subscription_id = subscription.stripe_subscription_id
    if ctx.stripe is None:
        log.warning("%s: no Stripe key to cancel %s", why, subscription_id)
        return False
    try:
        canceled: StripeDict | None = ctx.stripe.v1.subscriptions.cancel(
            subscription_id, options={"idempotency_key": idempotency_key}
        ).to_dict()
    except stripe.InvalidRequestError as exc:
        # Already canceled in Stripe (a late `deleted` event, or dunning got there first):
        # store what Stripe has instead of failing the cause's event for good.
        log.info("%s: %s not canceled: %s", why, subscription_id, exc)
        canceled = ctx.retrieve(lambda client: client.v1.subscriptions.retrieve(subscription_id))
        if canceled is None:
            return False
    account = session.get(Account, account_id)
    assert account is not None
    apply_stripe_subscription(
        session,
        ctx,
        account=account,
        subscription=canceled,
        as_of=None,  # Stripe's answer: its state now
        cause=Cause.EVENT,
        stripe_event_id=stripe_event_id,
    )
    return True
