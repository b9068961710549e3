"""A subscription to one plan, with its item and the item's monthly price."""

from __future__ import annotations

from cli.sample_events.customers import PAYMENT_METHOD
from cli.sample_events.ids import DAY, one_month_later
from cli.sample_events.prices import PlanPrice
from cli.sample_events.story import Story, StripeDict, SubscriptionIds


def price(story: Story, plan: PlanPrice, product: str) -> StripeDict:
    return {
        "id": plan.price_id,
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "created": story.now - 30 * DAY,
        "currency": "usd",
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": f"{plan.plan}_monthly",
        "metadata": {},
        "nickname": plan.name,
        "product": product,
        "recurring": {
            "interval": "month",
            "interval_count": 1,
            "meter": None,
            "trial_period_days": None,
            "usage_type": "licensed",
        },
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring",
        "unit_amount": plan.amount,
        "unit_amount_decimal": str(plan.amount),
    }


def subscription_item(story: Story, ids: SubscriptionIds, plan: PlanPrice) -> StripeDict:
    # Since 2025-03-31.basil the period lives on each item, not on the subscription.
    return {
        "id": ids.item,
        "object": "subscription_item",
        "created": story.now - 5,
        "current_period_end": one_month_later(story.now),
        "current_period_start": story.now,
        "discounts": [],
        "metadata": {},
        "price": price(story, plan, ids.product),
        "quantity": 1,
        "subscription": ids.subscription,
        "tax_rates": [],
    }


def subscription(
    story: Story,
    ids: SubscriptionIds,
    plan: PlanPrice,
    *,
    status: str = "active",
    cancel_at_period_end: bool = False,
) -> StripeDict:
    canceled = status == "canceled"
    return {
        **_subscription_billing(story, ids),
        **_cancellation(story, canceled=canceled, cancel_at_period_end=cancel_at_period_end),
        "collection_method": "charge_automatically",
        "created": story.now - 5,
        "currency": "usd",
        "customer": story.customer,
        "days_until_due": None,
        "default_payment_method": PAYMENT_METHOD,
        "default_source": None,
        "description": None,
        "discounts": [],
        "ended_at": story.now if canceled else None,
        "items": _item_list(story, ids, plan),
        "latest_invoice": ids.latest_invoice,
        "livemode": False,
        "metadata": {"user_id": story.user_id},
        **_nothing_pending(),
        "start_date": story.now - 5,
        "status": status,
        "test_clock": None,
        "transfer_data": None,
        "trial_end": None,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": None,
    }


def _subscription_billing(story: Story, ids: SubscriptionIds) -> StripeDict:
    """The subscription's id and how it is billed: monthly from its start, no Connect, no tax."""
    return {
        "id": ids.subscription,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": story.now,
        "billing_cycle_anchor_config": None,
        "billing_mode": {"type": "classic"},
        "billing_thresholds": None,
    }


def _cancellation(story: Story, *, canceled: bool, cancel_at_period_end: bool) -> StripeDict:
    """Whether and when the subscription ends: canceled now, at the period's end, or not."""
    return {
        "cancel_at": one_month_later(story.now) if cancel_at_period_end else None,
        "cancel_at_period_end": cancel_at_period_end,
        "canceled_at": story.now if canceled else None,
        "cancellation_details": {
            "comment": None,
            "feedback": None,
            "reason": "cancellation_requested" if canceled else None,
        },
    }


def _item_list(story: Story, ids: SubscriptionIds, plan: PlanPrice) -> StripeDict:
    return {
        "object": "list",
        "data": [subscription_item(story, ids, plan)],
        "has_more": False,
        "total_count": 1,
        "url": f"/v1/subscription_items?subscription={ids.subscription}",
    }


def _nothing_pending() -> StripeDict:
    """No pending invoice items, setup, update or schedule: a plain running subscription."""
    return {
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
    }
