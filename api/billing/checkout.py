"""Checkout Sessions: a paid plan (subscription mode) or a credit pack (payment mode).

Every session carries the user as `client_reference_id` and goes out with an idempotency
key: the request's own `Idempotency-Key`, or (user's customer, plan or pack, a short time
window), so a double click or a retried request opens one session, not two."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import stripe
from stripe.params.checkout import SessionCreateParams

from api.auth import User
from core.plans import CreditPack, Plan
from core.settings import Settings


@dataclass(frozen=True, slots=True)
class CheckoutSession:
    id: str
    url: str


def checkout_idempotency_key(
    *, user: User, customer_id: str, item: str, header_key: str | None, window_seconds: int
) -> str:
    """Stripe's idempotency key of this Checkout request (Stripe allows 255 characters)."""
    if header_key:
        digest = hashlib.sha256(header_key.encode()).hexdigest()
        return f"checkout:{user.id}:{digest}"[:255]
    window = int(time.time()) // window_seconds
    return f"checkout:{customer_id}:{item}:{window}"[:255]


def create_checkout(
    client: stripe.StripeClient,
    settings: Settings,
    *,
    user: User,
    customer_id: str,
    plan: Plan | None = None,
    pack: CreditPack | None = None,
    idempotency_key: str,
) -> CheckoutSession:
    """Open a Checkout Session for exactly one of a plan (with a price) or a credit pack."""
    base = settings.app_billing_url
    joiner = "&" if "?" in base else "?"
    params: SessionCreateParams = {
        "customer": customer_id,
        "client_reference_id": user.id,
        "success_url": f"{base}{joiner}checkout=success&session_id={{CHECKOUT_SESSION_ID}}",
        "cancel_url": f"{base}{joiner}checkout=canceled",
    }
    if plan is not None:
        if plan.price_id is None:
            raise ValueError(f"plan {plan.id} has no Stripe price")
        metadata = {"user_id": user.id, "plan": plan.id}
        params |= {
            "mode": "subscription",
            "line_items": [{"price": plan.price_id, "quantity": 1}],
            "metadata": metadata,
            "subscription_data": {"metadata": metadata},
        }
    elif pack is not None:
        # `metadata.pack` is what `checkout.session.completed` credits.
        metadata = {"user_id": user.id, "pack": pack.id}
        params |= {
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
    else:
        raise ValueError("a Checkout Session is for a plan or a credit pack")
    session = client.v1.checkout.sessions.create(
        params=params, options={"idempotency_key": idempotency_key}
    )
    if not session.url:  # only embedded Checkout has none, and it is not asked for
        raise stripe.APIError("Stripe returned a Checkout Session without a URL.")
    return CheckoutSession(id=session.id, url=session.url)
