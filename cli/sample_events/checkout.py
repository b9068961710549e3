"""Checkout sessions: a subscription bought in Checkout, and a credit pack."""

from __future__ import annotations

from dataclasses import dataclass

from cli.sample_events.customers import address
from cli.sample_events.ids import DAY, checkout_session_id
from cli.sample_events.prices import PlanPrice
from cli.sample_events.story import Payment, Story, StripeDict, SubscriptionIds
from core.plans import CreditPack


@dataclass(frozen=True, slots=True)
class _Sale:
    """What a session sells and how it is paid: what tells one session from another."""

    session_id: str
    mode: str
    payment_status: str
    amount: int
    currency: str
    metadata: StripeDict
    payment_method_types: list[str]
    subscription_id: str | None = None
    invoice_id: str | None = None
    payment_intent: str | None = None


def subscription_checkout(story: Story, ids: SubscriptionIds, plan: PlanPrice) -> StripeDict:
    sale = _Sale(
        session_id=checkout_session_id(),
        mode="subscription",
        payment_status="paid",
        amount=plan.amount,
        currency="usd",
        metadata={"user_id": story.user_id, "plan": plan.plan},
        payment_method_types=["card"],
        subscription_id=ids.subscription,
        invoice_id=ids.latest_invoice,
    )
    return _checkout_session(story, sale)


def pack_checkout(
    story: Story, pack: CreditPack, payment: Payment, *, paid: bool = True, delayed: bool = False
) -> StripeDict:
    """A credit pack bought in Checkout's payment mode (`metadata.pack` names it); `delayed`
    pays by bank debit, which completes the session unpaid and settles days later."""
    sale = _Sale(
        session_id=payment.checkout_session,
        mode="payment",
        payment_status="paid" if paid else "unpaid",
        amount=pack.amount,
        currency=pack.currency,
        metadata={"pack": pack.id, "user_id": story.user_id},
        payment_method_types=["us_bank_account"] if delayed else ["card"],
        payment_intent=payment.payment_intent,
    )
    return _checkout_session(story, sale)


def _checkout_session(story: Story, sale: _Sale) -> StripeDict:
    one_time = sale.mode == "payment"
    return {
        "id": sale.session_id,
        "object": "checkout.session",
        "adaptive_pricing": {"enabled": False},
        "after_expiration": None,
        "allow_promotion_codes": None,
        "amount_subtotal": sale.amount,
        "amount_total": sale.amount,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "billing_address_collection": None,
        "cancel_url": "http://localhost:3000/billing?checkout=canceled",
        "client_reference_id": story.user_id,
        "client_secret": None,
        "consent": None,
        "consent_collection": None,
        "created": story.now - 120,
        "currency": sale.currency,
        "custom_fields": [],
        "custom_text": _no_custom_text(),
        **_buyer(story, one_time=one_time),
        "discounts": [],
        "expires_at": story.now + DAY - 120,
        "invoice": sale.invoice_id,
        "invoice_creation": None,
        "livemode": False,
        "locale": None,
        "metadata": sale.metadata,
        "mode": sale.mode,
        **_payment(sale),
        **_nothing_else_collected(),
        "status": "complete",
        "submit_type": "pay" if one_time else None,
        "subscription": sale.subscription_id,
        "success_url": "http://localhost:3000/billing?checkout=success",
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted",
        "url": None,
    }


def _no_custom_text() -> StripeDict:
    return {
        "after_submit": None,
        "shipping_address": None,
        "submit": None,
        "terms_of_service_acceptance": None,
    }


def _buyer(story: Story, *, one_time: bool) -> StripeDict:
    """The known customer; a one-time payment would make one only if none is given."""
    return {
        "customer": story.customer,
        "customer_creation": "if_required" if one_time else None,
        "customer_details": _customer_details(story),
        "customer_email": None,
    }


def _customer_details(story: Story) -> StripeDict:
    """What the customer typed into the session's form."""
    return {
        "address": address(),
        "email": story.email,
        "name": "Jenny Rosen",
        "phone": None,
        "tax_exempt": "none",
        "tax_ids": [],
    }


def _payment(sale: _Sale) -> StripeDict:
    return {
        "payment_intent": sale.payment_intent,
        "payment_link": None,
        "payment_method_collection": "always",
        "payment_method_options": {},
        "payment_method_types": sale.payment_method_types,
        "payment_status": sale.payment_status,
    }


def _nothing_else_collected() -> StripeDict:
    """No phone, shipping or saved card: the session only takes a payment."""
    return {
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "saved_payment_method_options": None,
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
    }
