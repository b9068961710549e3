"""An early fraud warning on a charge, and the buyer context of a Compelling Evidence story."""

from __future__ import annotations

from cli.sample_events.story import Payment, Story, StripeDict

# Visa CE 3.0's identifying elements, as a host application's own Checkout passes them.
BUYER_IP = "203.0.113.7"
DEVICE_FINGERPRINT = "dfp_7f3a9c2e5b1d4f60a8c7e2b9"


def early_fraud_warning(
    story: Story, payment: Payment, *, warning_id: str, actionable: bool = True
) -> StripeDict:
    """The issuer's fraud report on the charge (`actionable` until disputed or refunded)."""
    return {
        "id": warning_id,
        "object": "radar.early_fraud_warning",
        "actionable": actionable,
        "charge": payment.charge,
        "created": story.now - 5,
        "fraud_type": "made_with_stolen_card",
        "livemode": False,
        "payment_intent": payment.payment_intent,
    }
