"""The view of a stored Stripe event that handlers receive."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from db.models import WebhookEvent


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
