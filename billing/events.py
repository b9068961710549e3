"""The stored Stripe event as the billing rules see it, and which events they may apply."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from db.models import WebhookEvent


class NotYetKnown(Exception):
    """Something the event needs has not arrived yet (say, the subscription of a first
    invoice while Stripe cannot be asked). Retried with backoff like a lost connection."""


@dataclass(frozen=True, slots=True)
class StripeEvent:
    row_id: int
    id: str
    type: str
    created: datetime | None
    api_version: str | None
    livemode: bool
    account: str | None
    payload: dict[str, Any]

    @classmethod
    def from_row(cls, row: WebhookEvent) -> StripeEvent:
        return cls(
            row_id=row.id,
            id=row.stripe_event_id,
            type=row.type,
            created=row.stripe_created,
            api_version=row.api_version,
            livemode=row.livemode,
            account=row.account,
            payload=row.payload,
        )

    @property
    def object(self) -> dict[str, Any]:
        return self.payload.get("data", {}).get("object") or {}

    @property
    def previous_attributes(self) -> dict[str, Any]:
        return self.payload.get("data", {}).get("previous_attributes") or {}

    @property
    def customer_id(self) -> str | None:
        """The Stripe customer this event is about, whichever shape the object has."""
        obj = self.object
        if obj.get("object") == "customer":
            return obj.get("id")
        customer = obj.get("customer")
        if isinstance(customer, dict):  # expanded
            return customer.get("id")
        return customer

    @property
    def time(self) -> datetime:
        """When Stripe made the event: the ordering guard's clock."""
        return self.created or datetime.now(UTC)


def foreign_event_reason(*, livemode: bool, account: object, live: bool) -> str | None:
    """Why an event belongs to the other mode or to another account (kept, never applied);
    None for an event of the platform's own account and mode. A test-mode secret pasted into
    production during a rotation must not let test-mode events grant real credits."""
    reasons = []
    if livemode != live:
        reasons.append(
            f"livemode={'true' if livemode else 'false'}"
            f" but the platform runs in {'live' if live else 'test'} mode"
        )
    if account is not None and account != "":
        reasons.append(
            f"Connect event for account {account}; the platform handles its own account only"
        )
    return "; ".join(reasons) or None
