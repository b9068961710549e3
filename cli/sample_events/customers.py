"""The sample customer: its Stripe object, its address and its card."""

from __future__ import annotations

from cli.sample_events.story import Story, StripeDict

PAYMENT_METHOD = "pm_1TriggerCard0000000001"


def address() -> StripeDict:
    """The billing address of the sample customer (Stripe's test fixtures' own)."""
    return {
        "city": None,
        "country": "US",
        "line1": None,
        "line2": None,
        "postal_code": "94107",
        "state": None,
    }


def customer(story: Story, *, email: str | None = None) -> StripeDict:
    return {
        "id": story.customer,
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": story.now - 60,
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": email or story.email,
        "invoice_prefix": story.invoice_prefix,
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": {"user_id": story.user_id},
        "name": "Jenny Rosen",
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }
