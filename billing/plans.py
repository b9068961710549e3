"""Which plan a Stripe price pays for; a price that is not in the catalogue is reported."""

from __future__ import annotations

import logging

import sentry_sdk

from billing.context import BillingContext
from core.plans import Plan

log = logging.getLogger("billing.plans")


def plan_for_price(ctx: BillingContext, price_id: str | None, *, where: str) -> Plan | None:
    """The catalogue's plan of a price; a price that is not ours is reported, not guessed."""
    plan = ctx.catalogue.plan_for_price(price_id)
    if plan is None and price_id:
        report_unknown_price(price_id, where=where)
    return plan


def report_unknown_price(price_id: str, *, where: str) -> None:
    log.warning("price %s (%s) is not in the plan catalogue: stored, no credits", price_id, where)
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("stripe_price_id", price_id)
        sentry_sdk.capture_message(f"Unknown Stripe price {price_id} in {where}", "warning")
