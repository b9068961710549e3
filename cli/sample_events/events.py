"""The Stripe event that carries one step of a story."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from cli.sample_events.ids import stripe_id
from cli.sample_events.story import StripeDict

API_VERSION = "2025-09-30.clover"


@dataclass(frozen=True, slots=True)
class Step:
    """One event of a story, before its id and time are given."""

    type: str
    object: StripeDict
    previous_attributes: StripeDict | None = None
    # True when an API call made it (a dashboard click, our own request): it has a request id.
    by_request: bool = False


def event(
    step: Step, *, created: int, api_version: str = API_VERSION, event_id: str | None = None
) -> StripeDict:
    """The event Stripe sends of one step (a new id unless `event_id` is given)."""
    data: StripeDict = {"object": step.object}
    if step.previous_attributes is not None:
        data["previous_attributes"] = step.previous_attributes
    request = (
        {"id": stripe_id("req", 14), "idempotency_key": str(uuid.uuid4())}
        if step.by_request
        else {"id": None, "idempotency_key": None}
    )
    return {
        "id": event_id or stripe_id("evt"),
        "object": "event",
        "api_version": api_version,
        "created": created,
        "data": data,
        "livemode": False,
        "pending_webhooks": 1,
        "request": request,
        "type": step.type,
    }
