"""`checkout.session.completed` and `.async_payment_succeeded`: link the user to the
customer. A paid subscription session stores the subscription and grants the first period,
keyed by the session's invoice id (the same key as the invoice's own events); a paid
payment session grants a credit pack, keyed by the payment intent."""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.stripe_objects import object_id
from db import ledger
from db.models import Account, CreditKind
from db.subscriptions import Cause, find_subscription
from tasks.events.event import StripeEvent
from tasks.events.handlers.common import (
    adopt_customer,
    catalogue,
    fetch_subscription,
    log,
)
from tasks.events.handlers.invoices import grant_period_credits
from tasks.events.handlers.subscriptions import apply_stripe_subscription

# Checkout is paid for: a card at once, or a delayed method (SEPA, ACH, ...) later, when
# `checkout.session.async_payment_succeeded` says so.
PAID = ("paid", "no_payment_required")


def checkout_completed(session: Session, event: StripeEvent) -> None:
    """`checkout.session.completed` and `checkout.session.async_payment_succeeded`."""
    checkout = event.object
    customer_id = event.customer_id
    if customer_id is None:
        if checkout.get("payment_status") in PAID:
            # A guest Checkout (customer_creation `if_required`) was paid: the credits have no
            # account to go to. Fail loudly so an operator links it, rather than drop them.
            raise ValueError(f"paid checkout {checkout.get('id')} has no customer to credit")
        log.info("checkout %s has no customer: nothing to link", checkout.get("id"))
        return
    account = adopt_customer(
        session,
        customer_id=customer_id,
        source=checkout,
        user_id=checkout.get("client_reference_id") or None,
    )
    if checkout.get("mode") == "subscription":
        subscription_checkout(session, account=account, checkout=checkout, event=event)
    elif checkout.get("mode") == "payment":
        pack_checkout(session, account=account, checkout=checkout, event=event)


def subscription_checkout(
    session: Session, *, account: Account, checkout: dict, event: StripeEvent
) -> None:
    subscription_id = object_id(checkout.get("subscription"))
    if subscription_id is None:
        return
    fetched = fetch_subscription(subscription_id)
    if fetched is not None:
        # Stripe's object as it is now: newer than any event about it already sent.
        apply_stripe_subscription(
            session,
            account=account,
            subscription=fetched,
            as_of=None,
            cause=Cause.EVENT,
            stripe_event_id=event.id,
        )
    subscription = find_subscription(session, subscription_id=subscription_id)
    plan = catalogue().plan(subscription.plan or "") if subscription else None
    invoice_id = object_id(checkout.get("invoice"))
    # Without the plan or the invoice (API versions before 2022 have no `invoice` here) the
    # invoice's own event grants the period: it carries both, under the same key.
    # An unpaid session (a delayed payment method) grants nothing: `invoice.paid` will.
    if plan is not None and invoice_id is not None and checkout.get("payment_status") in PAID:
        grant_period_credits(
            session, account=account, invoice_id=invoice_id, plan=plan, stripe_event_id=event.id
        )


def pack_checkout(
    session: Session, *, account: Account, checkout: dict, event: StripeEvent
) -> None:
    intent = object_id(checkout.get("payment_intent"))
    pack_id = (checkout.get("metadata") or {}).get("pack")
    pack = catalogue().pack(pack_id)
    if checkout.get("payment_status") not in PAID or intent is None:
        log.info("checkout %s is not paid yet: no credits", checkout.get("id"))
        return
    if pack is None:
        raise ValueError(f"checkout {checkout.get('id')} names no known credit pack: {pack_id!r}")
    ledger.add_entry(
        session,
        account_id=account.id,
        kind=CreditKind.PACK_CREDITS,
        source_id=intent,
        amount=pack.credits,
        payment_intent_id=intent,
        stripe_event_id=event.id,
        description=f"credit pack {pack.name}",
    )
