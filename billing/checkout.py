"""Checkout: opening a Session for a signed-in user (a paid plan in subscription mode, a credit
pack in payment mode), and what its completion does.

Opening: every session carries the user as `client_reference_id` and goes out with an
idempotency key: the request's own `Idempotency-Key`, or (user's customer, plan or pack, a
short time window), so a double click or a retried request opens one session, not two.

`checkout.session.completed` and `.async_payment_succeeded` link the user to the customer. A
paid subscription session stores the subscription and grants the first period, keyed by the
session's invoice id (the same key as the invoice's own events); a paid payment session
grants a credit pack, keyed by the payment intent."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import stripe
from sqlalchemy.orm import Session
from stripe.params.checkout import SessionCreateParams

from billing.accounts import adopt_customer
from billing.context import BillingContext
from billing.events import StripeEvent
from billing.invoices import grant_period_credits
from billing.purchases import checkout_paid
from billing.settlement import bring_ledger_to
from billing.subscriptions import apply_stripe_subscription, fetch_subscription
from core.plans import CreditPack, Plan
from core.stripe_objects import invoice_price_id, object_id
from db import ledger
from db.invoices import find_invoice
from db.models import Account, CreditKind
from db.subscriptions import Cause

log = logging.getLogger("billing.checkout")

# Checkout is paid for: a card at once, or a delayed method (SEPA, ACH, ...) later, when
# `checkout.session.async_payment_succeeded` says so.
PAID = ("paid", "no_payment_required")


def checkout_completed(session: Session, ctx: BillingContext, event: StripeEvent) -> None:
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
        ctx,
        customer_id=customer_id,
        source=checkout,
        user_id=checkout.get("client_reference_id") or None,
    )
    if checkout.get("mode") == "subscription":
        subscription_checkout(session, ctx, account=account, checkout=checkout, event=event)
    elif checkout.get("mode") == "payment":
        pack_checkout(session, ctx, account=account, checkout=checkout, event=event)
    if checkout.get("payment_status") in PAID:
        checkout_paid(session, checkout)  # the buyer's IP and device join the payment


def subscription_checkout(
    session: Session, ctx: BillingContext, *, account: Account, checkout: dict, event: StripeEvent
) -> None:
    """Store the session's subscription as Stripe has it now; grant a paid first period."""
    subscription_id = object_id(checkout.get("subscription"))
    if subscription_id is None:
        return
    fetched = fetch_subscription(ctx, subscription_id)
    if fetched is not None:
        # Stripe's object as it is now: newer than any event about it already sent.
        apply_stripe_subscription(
            session,
            ctx,
            account=account,
            subscription=fetched,
            as_of=None,
            cause=Cause.EVENT,
            stripe_event_id=event.id,
        )
    invoice_id = object_id(checkout.get("invoice"))
    plan = billed_plan(session, ctx, checkout=checkout)
    # Without the plan or the invoice (API versions before 2022 have no `invoice` here) the
    # invoice's own event grants the period: it carries both, under the same key.
    # An unpaid session (a delayed payment method) grants nothing: `invoice.paid` will.
    if plan is not None and invoice_id is not None and checkout.get("payment_status") in PAID:
        grant_period_credits(
            session, account=account, invoice_id=invoice_id, plan=plan, stripe_event_id=event.id
        )
        bring_ledger_to(
            session,
            payment_intent_id=None,
            charge_id=None,
            invoice_id=invoice_id,
            stripe_event_id=event.id,
        )


def billed_plan(session: Session, ctx: BillingContext, *, checkout: dict) -> Plan | None:
    """The plan the session's first invoice billed (its line price), never the subscription's
    plan today: a Checkout delivered after an upgrade or a downgrade must grant what was paid
    for. The stored invoice's plan; else the plan the session was opened for (`metadata.plan`,
    the session's own line item); else the invoice as Stripe has it. None when none of them
    is known: the invoice's own event grants the period, under the same key."""
    invoice_id = object_id(checkout.get("invoice"))
    stored = find_invoice(session, invoice_id=invoice_id) if invoice_id else None
    if stored is not None and stored.plan:
        return ctx.catalogue.plan(stored.plan)
    named = ctx.catalogue.plan((checkout.get("metadata") or {}).get("plan") or "")
    if named is not None:
        return named
    if invoice_id is None:
        return None
    fetched = ctx.retrieve(lambda client: client.v1.invoices.retrieve(invoice_id))
    price = invoice_price_id(fetched) if fetched else None
    return ctx.catalogue.plan_for_price(price) if price else None


def pack_checkout(
    session: Session, ctx: BillingContext, *, account: Account, checkout: dict, event: StripeEvent
) -> None:
    """A paid payment session grants its credit pack, once per payment intent."""
    intent = object_id(checkout.get("payment_intent"))
    pack_id = (checkout.get("metadata") or {}).get("pack")
    pack = ctx.catalogue.pack(pack_id)
    if checkout.get("payment_status") not in PAID or intent is None:
        log.info("checkout %s is not paid yet: no credits", checkout.get("id"))
        return
    if pack is None:
        raise ValueError(f"checkout {checkout.get('id')} names no known credit pack: {pack_id!r}")
    # Charges of API versions before payment intents (2017-08-15) do not name theirs: the
    # pack is keyed by its charge too, so that their refunds and disputes find it.
    charge = charge_of_intent(ctx, intent)
    ledger.add_entry(
        session,
        account_id=account.id,
        kind=CreditKind.PACK_CREDITS,
        source_id=intent,
        amount=pack.credits,
        payment_intent_id=intent,
        charge_id=charge,
        stripe_event_id=event.id,
        description=f"credit pack {pack.name}",
    )
    # A refund or a dispute of the payment that came first takes its share now.
    bring_ledger_to(session, payment_intent_id=intent, charge_id=charge, stripe_event_id=event.id)


def charge_of_intent(ctx: BillingContext, intent: str) -> str | None:
    """The charge that paid a payment intent, as Stripe has it; None when Stripe is off."""
    found = ctx.retrieve(lambda client: client.v1.payment_intents.retrieve(intent))
    if not found:
        return None
    charges = (found.get("charges") or {}).get("data") or []  # before 2022-11-15
    return object_id(found.get("latest_charge")) or next(
        (object_id(c) for c in charges if object_id(c)), None
    )


# --- Opening a Checkout Session (the billing API) -----------------------------------------


@dataclass(frozen=True, slots=True)
class CheckoutSession:
    id: str
    url: str


def checkout_idempotency_key(
    ctx: BillingContext, *, user_id: str, customer_id: str, item: str, header_key: str | None
) -> str:
    """Stripe's idempotency key of this Checkout request (Stripe allows 255 characters)."""
    if header_key:
        digest = hashlib.sha256(header_key.encode()).hexdigest()
        return f"checkout:{user_id}:{digest}"[:255]
    window = int(ctx.now().timestamp()) // ctx.settings.checkout_idempotency_window_seconds
    return f"checkout:{customer_id}:{item}:{window}"[:255]


def create_checkout(
    ctx: BillingContext,
    *,
    user_id: str,
    customer_id: str,
    plan: Plan | None = None,
    pack: CreditPack | None = None,
    idempotency_key: str,
) -> CheckoutSession:
    """Open a Checkout Session for exactly one of a plan (with a price) or a credit pack."""
    base = ctx.settings.app_billing_url
    joiner = "&" if "?" in base else "?"
    params: SessionCreateParams = {
        "customer": customer_id,
        "client_reference_id": user_id,
        "success_url": f"{base}{joiner}checkout=success&session_id={{CHECKOUT_SESSION_ID}}",
        "cancel_url": f"{base}{joiner}checkout=canceled",
    }
    if plan is not None:
        params |= _subscription_params(plan, user_id=user_id)
    elif pack is not None:
        params |= _pack_params(pack, user_id=user_id)
    else:
        raise ValueError("a Checkout Session is for a plan or a credit pack")
    session = ctx.require_stripe().v1.checkout.sessions.create(
        params=params, options={"idempotency_key": idempotency_key}
    )
    if not session.url:  # only embedded Checkout has none, and it is not asked for
        raise stripe.APIError("Stripe returned a Checkout Session without a URL.")
    return CheckoutSession(id=session.id, url=session.url)


def _subscription_params(plan: Plan, *, user_id: str) -> SessionCreateParams:
    if plan.price_id is None:
        raise ValueError(f"plan {plan.id} has no Stripe price")
    metadata = {"user_id": user_id, "plan": plan.id}
    return {
        "mode": "subscription",
        "line_items": [{"price": plan.price_id, "quantity": 1}],
        "metadata": metadata,
        "subscription_data": {"metadata": metadata},
    }


def _pack_params(pack: CreditPack, *, user_id: str) -> SessionCreateParams:
    # `metadata.pack` is what `checkout.session.completed` credits.
    metadata = {"user_id": user_id, "pack": pack.id}
    return {
        "mode": "payment",
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": pack.currency,
                    "unit_amount": pack.amount,
                    "product_data": {"name": pack.name},
                },
            }
        ],
        "metadata": metadata,
        "payment_intent_data": {"metadata": metadata},
    }
