"""Invoice lines: a subscription's line, and the proration lines made from one."""

from __future__ import annotations

import copy

from cli.sample_events.ids import one_month_later, stripe_id
from cli.sample_events.prices import PlanPrice
from cli.sample_events.story import Story, StripeDict, SubscriptionIds


def line_list(invoice_id: str, lines: list[StripeDict]) -> StripeDict:
    return {
        "object": "list",
        "data": lines,
        "has_more": False,
        "total_count": len(lines),
        "url": f"/v1/invoices/{invoice_id}/lines",
    }


def subscription_line(
    story: Story, ids: SubscriptionIds, plan: PlanPrice, *, invoice_id: str
) -> StripeDict:
    """The line of a period of the plan: its service period is the month from now."""
    return {
        "id": stripe_id("il"),
        "object": "line_item",
        "amount": plan.amount,
        "currency": "usd",
        # Stripe writes a multiplication sign (U+00D7) between quantity and name.
        "description": f"1 \u00d7 {plan.name} (at ${plan.amount / 100:.2f} / month)",
        "discount_amounts": [],
        "discountable": True,
        "discounts": [],
        "invoice": invoice_id,
        "livemode": False,
        "metadata": {},
        "parent": _subscription_item_parent(ids),
        "period": {"end": one_month_later(story.now), "start": story.now},
        "pretax_credit_amounts": [],
        "pricing": {
            "price_details": {"price": plan.price_id, "product": ids.product},
            "type": "price_details",
            "unit_amount_decimal": str(plan.amount),
        },
        "quantity": 1,
        "subtotal": plan.amount,
        "taxes": [],
    }


def _subscription_item_parent(ids: SubscriptionIds) -> StripeDict:
    # Since 2025-03-31.basil a line names its subscription item under `parent`.
    return {
        "invoice_item_details": None,
        "subscription_item_details": {
            "invoice_item": None,
            "proration": False,
            "proration_details": {"credited_items": None},
            "subscription": ids.subscription,
            "subscription_item": ids.item,
        },
        "type": "subscription_item_details",
    }


def proration_line(
    template: StripeDict,
    *,
    price_id: str,
    amount: int,
    description: str,
    period: StripeDict | None = None,
    unit_amount: int | None = None,
) -> StripeDict:
    """A proration line made from an invoice's subscription line, in the template's shape of
    whichever API version: crediting (a negative `amount`) or charging time on `price_id`."""
    line = copy.deepcopy(template)
    line.update(id=stripe_id("il"), amount=amount, description=description)
    if period is not None:
        line["period"] = dict(period)
    set_line_price(line, price_id, unit_amount=unit_amount)
    if "proration" in line:  # before 2025-03-31.basil: an invoice item flagged as proration
        line["proration"] = True
        line["type"] = "invoiceitem"
    details = (line.get("parent") or {}).get("subscription_item_details")
    if details is not None:
        details["proration"] = True
    for key in ("subtotal", "amount_excluding_tax"):
        if key in line:
            line[key] = amount
    return line


def set_line_price(line: StripeDict, price_id: str, *, unit_amount: int | None = None) -> None:
    """Point an invoice line at another price, wherever its API version names it."""
    for key in ("plan", "price"):
        if isinstance(line.get(key), dict):
            line[key]["id"] = price_id
    pricing = line.get("pricing")
    if isinstance(pricing, dict):
        pricing["price_details"]["price"] = price_id
        if unit_amount is not None:
            pricing["unit_amount_decimal"] = str(unit_amount)
