"""What differs between a local subscription and Stripe's: the fields a lost webhook leaves
wrong. Pure comparisons; nothing here reads or writes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from db.reconciliation import LocalState
from db.subscriptions import SubscriptionState


@dataclass(frozen=True, slots=True)
class Difference:
    field: str
    local: Any  # JSON-ready: strings, booleans or None
    stripe: Any


def differences(local: LocalState, stripe: SubscriptionState) -> list[Difference]:
    """Each compared field that disagrees. The plan is compared by price: a price outside
    the catalogue still drifts."""
    found = []
    if local.status != stripe.status:
        found.append(Difference("status", local.status, stripe.status))
    if local.price_id != stripe.price_id:
        found.append(Difference("plan", local.price_id, stripe.price_id))
    if _seconds(local.current_period_end) != _seconds(stripe.current_period_end):
        found.append(
            Difference(
                "current_period_end",
                _iso(local.current_period_end),
                _iso(stripe.current_period_end),
            )
        )
    if local.cancel_at_period_end != stripe.cancel_at_period_end:
        found.append(
            Difference(
                "cancel_at_period_end", local.cancel_at_period_end, stripe.cancel_at_period_end
            )
        )
    if local.missing_in_stripe_since is not None:
        # Marked missing by an earlier run, yet Stripe lists it again.
        found.append(Difference("missing_in_stripe", _iso(local.missing_in_stripe_since), "listed"))
    return found


def _seconds(moment: datetime | None) -> int | None:
    # Stripe's times have whole seconds.
    return int(moment.timestamp()) if moment is not None else None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
