"""Checkout Sessions that end without money: a delayed payment method that failed
(`checkout.session.async_payment_failed`), and a session left to expire
(`checkout.session.expired`). Neither grants anything.

A failed delayed payment is told with the `payment_failed` email, naming what the session was
for (a plan or a credit pack), once per session. An expired session is kept once and counted
(`billing_checkout_sessions_expired`); with CHECKOUT_RECOVERY_EMAILS it also gets a recovery
email, but only when the customer agreed in that session to promotional email
(`consent.promotions = opt_in`): a reminder to buy is marketing.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from billing.accounts import adopt_customer
from billing.context import BillingContext
from billing.events import StripeEvent
from billing.notices import notify_customer
from core.metrics import CHECKOUT_SESSIONS_EXPIRED
from core.stripe_objects import StripeDict, checkout_promotions_consent, object_id, timestamp
from db.after_commit import after_commit
from db.checkout_expirations import record_expiration
from db.models import Account
from db.subscriptions import find_subscription

log = logging.getLogger("billing.checkout_failures")


def checkout_async_payment_failed(
    session: Session, ctx: BillingContext, event: StripeEvent
) -> None:
    """`checkout.session.async_payment_failed`: nothing granted; the `payment_failed` email."""
    checkout = event.object
    account = _account(session, ctx, event)
    if account is None:
        log.info("failed checkout %s has no customer to tell", checkout.get("id"))
        return
    notify_customer(
        session,
        ctx,
        account,
        key=f"checkout-payment-failed:{checkout['id']}",
        template="payment_failed",
        context={
            "amount": int(checkout.get("amount_total") or 0),
            "currency": checkout.get("currency") or "usd",
            "purchase": purchase_description(session, ctx, checkout),
            "plan_name": None,
            "invoice_number": None,
            "failure_reason": "your bank did not complete the payment",
            "next_attempt": None,
            "invoice_url": None,
            "retry_url": ctx.settings.app_billing_url,
        },
    )


def checkout_expired(session: Session, ctx: BillingContext, event: StripeEvent) -> None:
    """`checkout.session.expired`: keep and count it; maybe the recovery email."""
    checkout = event.object
    account = _account(session, ctx, event)
    consent = checkout_promotions_consent(checkout)
    mode = checkout.get("mode") or "unknown"
    new = record_expiration(
        session,
        checkout_session_id=checkout["id"],
        account_id=account.id if account else None,
        mode=checkout.get("mode"),
        item=_item(checkout),
        amount_total=checkout.get("amount_total"),
        currency=checkout.get("currency"),
        promotions_consent=consent,
        expired_at=timestamp(checkout.get("expires_at")) or event.time,
    )
    if new:
        after_commit(session, CHECKOUT_SESSIONS_EXPIRED.labels(_mode_label(mode)).inc)
    if not ctx.settings.checkout_recovery_emails or not consent or account is None:
        return
    recovery = (checkout.get("after_expiration") or {}).get("recovery") or {}
    notify_customer(
        session,
        ctx,
        account,
        key=f"checkout-recovery:{checkout['id']}",
        template="checkout_recovery",
        context={
            "purchase": purchase_description(session, ctx, checkout),
            "amount": int(checkout.get("amount_total") or 0),
            "currency": checkout.get("currency") or "usd",
            "resume_url": recovery.get("url") or ctx.settings.app_billing_url,
        },
    )


def purchase_description(session: Session, ctx: BillingContext, checkout: StripeDict) -> str:
    """What the session was for, as the customer knows it: `the Pro plan`, `500 credits`.
    The platform's sessions name their plan or pack in `metadata`; a subscription session
    opened elsewhere is named by the subscription it made, when that is known."""
    metadata = checkout.get("metadata") or {}
    if checkout.get("mode") == "subscription":
        plan = ctx.catalogue.plan(metadata.get("plan") or "")
        if plan is None:
            made = find_subscription(
                session, subscription_id=object_id(checkout.get("subscription")) or ""
            )
            plan = ctx.catalogue.plan((made.plan if made else None) or "")
        return f"the {plan.name} plan" if plan else "a subscription"
    pack = ctx.catalogue.pack(metadata.get("pack"))
    return pack.name if pack else "your purchase"


def _item(checkout: StripeDict) -> str | None:
    metadata = checkout.get("metadata") or {}
    return metadata.get("plan") or metadata.get("pack")


def _mode_label(mode: str) -> str:
    return mode if mode in ("subscription", "payment", "setup") else "other"


def _account(session: Session, ctx: BillingContext, event: StripeEvent) -> Account | None:
    if not event.customer_id:
        return None
    checkout = event.object
    return adopt_customer(
        session,
        ctx,
        customer_id=event.customer_id,
        source=checkout,
        user_id=checkout.get("client_reference_id") or None,
    )
