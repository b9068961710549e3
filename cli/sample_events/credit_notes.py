"""Credit notes: a paid invoice credited back to the customer's balance (no refund)."""

from __future__ import annotations

from cli.sample_events.ids import stripe_id
from cli.sample_events.prices import PlanPrice
from cli.sample_events.story import Story, StripeDict


def credit_note(
    story: Story, plan: PlanPrice, *, credit_note_id: str, invoice_id: str, voided: bool = False
) -> StripeDict:
    """The whole invoice credited to the customer's balance, after payment (newest shape)."""
    return {
        "id": credit_note_id,
        "object": "credit_note",
        "amount": plan.amount,
        "amount_shipping": 0,
        "created": story.now - 2,
        "currency": "usd",
        "customer": story.customer,
        "customer_balance_transaction": stripe_id("cbtxn"),
        "discount_amount": 0,
        "discount_amounts": [],
        "effective_at": story.now - 2,
        "invoice": invoice_id,
        "lines": {"object": "list", "data": [], "has_more": False, "total_count": 0},
        "livemode": False,
        "memo": "Service credit",
        "metadata": {},
        "number": f"{story.invoice_prefix}-0001-CN-01",
        "out_of_band_amount": None,
        "post_payment_amount": plan.amount,
        "pre_payment_amount": 0,
        "reason": "order_change",
        "refunds": [],
        "status": "void" if voided else "issued",
        "subtotal": plan.amount,
        "subtotal_excluding_tax": plan.amount,
        "total": plan.amount,
        "total_excluding_tax": plan.amount,
        "total_taxes": [],
        "type": "post_payment",
        "voided_at": story.now if voided else None,
    }
