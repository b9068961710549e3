"""Build, sign and follow Stripe events in tests."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from sqlalchemy import select

from core.stripe_objects import timestamp
from core.webhook_signing import stripe_signature_header
from db.models import WebhookEvent
from db.session import new_session

TERMINAL = ("processed", "failed", "ignored")


def make_event(event_type: str = "invoice.paid", **fields: Any) -> dict[str, Any]:
    """A fixture event of that type (any other type: the `invoice.paid` fixture renamed) with
    fresh ids; `fields` override top-level keys."""
    from tests.support.stripe_events import Ids, has_fixture, stripe_event

    source = event_type if has_fixture(event_type) else "invoice.paid"
    event = stripe_event(source, Ids())
    event["type"] = event_type
    event.update(fields)
    return event


def unique_customer() -> str:
    return f"cus_{uuid.uuid4().hex[:14]}"


def signed(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    return {
        "Stripe-Signature": stripe_signature_header(body, secret, timestamp),
        "Content-Type": "application/json",
    }


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def stored(stripe_event_id: str) -> WebhookEvent | None:
    with new_session() as session:
        return session.scalar(
            select(WebhookEvent).where(WebhookEvent.stripe_event_id == stripe_event_id)
        )


def count_rows(stripe_event_id: str) -> int:
    with new_session() as session:
        return len(
            session.scalars(
                select(WebhookEvent.id).where(WebhookEvent.stripe_event_id == stripe_event_id)
            ).all()
        )


def wait_for_status(
    stripe_event_id: str, statuses: tuple[str, ...] = TERMINAL, timeout: float = 20.0
) -> WebhookEvent:
    """Poll until the row reaches one of the statuses; fail with its last state otherwise."""
    deadline = time.monotonic() + timeout
    row = None
    while time.monotonic() < deadline:
        row = stored(stripe_event_id)
        if row is not None and row.status in statuses:
            return row
        time.sleep(0.05)
    state = None if row is None else (row.status, row.attempts, row.last_error)
    raise AssertionError(f"{stripe_event_id} did not reach {statuses}: {state}")


def store_directly(event: dict[str, Any], **columns: Any) -> int:
    """Insert a row as the endpoint would, without publishing it; returns the row id."""
    with new_session() as session, session.begin():
        row = WebhookEvent(
            stripe_event_id=event["id"],
            type=event["type"],
            api_version=event.get("api_version"),
            livemode=bool(event.get("livemode")),
            account=event.get("account"),
            stripe_created=timestamp(event.get("created")),
            payload=event,
            **columns,
        )
        session.add(row)
        session.flush()
        return row.id


def handled_lines(log: str, stripe_event_id: str) -> int:
    """How many times a worker's handler logged this event."""
    return sum(1 for line in log.splitlines() if "handled " in line and stripe_event_id in line)
