"""The card charge of a credit pack's payment."""

from __future__ import annotations

from cli.sample_events.customers import PAYMENT_METHOD, address
from cli.sample_events.ids import stripe_id, token
from cli.sample_events.story import Payment, Story, StripeDict


def charge(
    story: Story,
    payment: Payment,
    *,
    refunded: int = 0,
    created: int | None = None,
    fingerprint: str | None = None,
) -> StripeDict:
    """The pack's card charge; since 2022-11-15 its refunds are not listed on it. One card
    has one `fingerprint` across payments (default: the customer's own)."""
    return {
        "id": payment.charge,
        "object": "charge",
        "amount": payment.amount,
        "amount_captured": payment.amount,
        "amount_refunded": refunded,
        **_no_platform_fee(),
        "balance_transaction": stripe_id("txn"),
        "billing_details": _billing_details(story),
        "calculated_statement_descriptor": "EXAMPLE SAAS",
        "captured": True,
        "created": created if created is not None else story.now - 60,
        "currency": payment.currency,
        "customer": story.customer,
        "description": None,
        "disputed": False,
        **_no_failure(),
        "fraud_details": {},
        "livemode": False,
        "metadata": {},
        "on_behalf_of": None,
        "outcome": _approved(),
        "paid": True,
        "payment_intent": payment.payment_intent,
        "payment_method": PAYMENT_METHOD,
        "payment_method_details": _card(fingerprint or card_fingerprint(story)),
        **_receipt(story),
        "refunded": refunded >= payment.amount,
        "review": None,
        "shipping": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "succeeded",
        "transfer_data": None,
        "transfer_group": None,
    }


def _billing_details(story: Story) -> StripeDict:
    return {
        "address": address(),
        "email": story.email,
        "name": "Jenny Rosen",
        "phone": None,
        "tax_id": None,
    }


def _no_platform_fee() -> StripeDict:
    # The platform charges its own customers: no Connect application takes a fee.
    return {"application": None, "application_fee": None, "application_fee_amount": None}


def _receipt(story: Story) -> StripeDict:
    return {
        "receipt_email": story.email,
        "receipt_number": None,
        "receipt_url": f"https://pay.stripe.com/receipts/payment/{token(40)}",
    }


def _no_failure() -> StripeDict:
    return {
        "failure_balance_transaction": None,
        "failure_code": None,
        "failure_message": None,
    }


def _approved() -> StripeDict:
    """The card network's answer: approved, with a normal risk."""
    return {
        "advice_code": None,
        "network_advice_code": None,
        "network_decline_code": None,
        "network_status": "approved_by_network",
        "reason": None,
        "risk_level": "normal",
        "seller_message": "Payment complete.",
        "type": "authorized",
    }


def card_fingerprint(story: Story) -> str:
    """The customer's card, the same in each of its stories (Stripe's are 16 characters)."""
    return ("fp" + story.customer.removeprefix("cus_") + "0" * 16)[:16]


def _card(fingerprint: str) -> StripeDict:
    """Stripe's test Visa (4242)."""
    return {
        "card": {
            "brand": "visa",
            "country": "US",
            "exp_month": 12,
            "exp_year": 2030,
            "fingerprint": fingerprint,
            "funding": "credit",
            "last4": "4242",
            "network": "visa",
        },
        "type": "card",
    }
