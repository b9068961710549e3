"""What Stripe says about a payment that the webhook objects no longer say themselves."""

from __future__ import annotations

from billing.context import BillingContext
from core.stripe_objects import object_id


def invoice_of_payment(ctx: BillingContext, intent: str | None) -> str | None:
    """The invoice a payment intent paid. Since 2025-03-31.basil neither the invoice nor the
    charge names the other in a webhook (`invoice.payments` is includable), so Stripe's
    invoice payments are asked."""
    if intent is None:
        return None
    payments = ctx.retrieve(
        lambda client: client.v1.invoice_payments.list(
            params={"payment": {"type": "payment_intent", "payment_intent": intent}, "limit": 1}
        )
    )
    data = (payments or {}).get("data") or []
    return object_id(data[0].get("invoice")) if data else None
