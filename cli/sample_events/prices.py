"""The plans' Stripe prices a story uses: the catalogue's, or placeholders."""

from __future__ import annotations

from dataclasses import dataclass

from core.plans import Catalogue

# Stripe holds these prices' amounts, not the catalogue; they only show in emails.
PLAN_AMOUNTS = {"starter": 1900, "pro": 2900, "team": 9900}


@dataclass(frozen=True, slots=True)
class PlanPrice:
    plan: str
    name: str
    price_id: str
    amount: int
    configured: bool  # False: a placeholder, which the platform's catalogue does not know


def plan_price(catalogue: Catalogue, plan_id: str) -> PlanPrice:
    """The plan's configured Stripe price, or a placeholder the platform will not recognise."""
    plan = catalogue.plan(plan_id)
    name = plan.name if plan else plan_id.title()
    price_id = plan.price_id if plan else None
    return PlanPrice(
        plan=plan_id,
        name=name,
        price_id=price_id or placeholder_price(plan_id),
        amount=PLAN_AMOUNTS.get(plan_id, 1900),
        configured=price_id is not None,
    )


def known_price(plan_id: str, price_id: str) -> PlanPrice:
    """A plan's price whose id the caller knows."""
    amount = PLAN_AMOUNTS.get(plan_id, 1900)
    return PlanPrice(plan_id, plan_id.title(), price_id, amount, configured=True)


def placeholder_price(plan_id: str) -> str:
    """The made-up price id of a plan whose price is not configured; `billing up` in
    development configures the platform with these, so triggered events grant credits."""
    return f"price_{plan_id}_local"
