"""Duplicate storms through the real endpoint, broker and worker (two worker processes):
every event five times, concurrently, interleaved with the other events of its invoice."""

from __future__ import annotations

import asyncio
import json
import random

import httpx

from tests.conftest import WEBHOOK_SECRET
from tests.support.events import signed, wait_for_status
from tests.support.stripe_events import (
    CREDITS,
    Ids,
    emails,
    known_customer,
    ledger,
    stripe_event,
)

WEBHOOK = "/api/stripe/webhook"


def deliver_concurrently(base_url: str, events: list[dict]) -> list[int]:
    bodies = [json.dumps(event).encode() for event in events]

    async def post_all() -> list[int]:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            answers = await asyncio.gather(
                *(http.post(WEBHOOK, content=b, headers=signed(b, WEBHOOK_SECRET)) for b in bodies)
            )
        return [a.status_code for a in answers]

    return asyncio.run(post_all())


def first_invoice_events(ids: Ids) -> list[dict]:
    return [
        stripe_event("customer.subscription.created", ids),
        stripe_event("checkout.session.completed", ids),
        stripe_event("invoice.paid", ids),
        stripe_event("invoice.payment_succeeded", ids),
    ]


def test_every_event_five_times_gives_one_grant_and_one_receipt(api_server, worker):
    ids = known_customer(Ids())
    events = first_invoice_events(ids)
    storm = [event for event in events for _ in range(5)]
    random.shuffle(storm)

    assert deliver_concurrently(api_server.url, storm) == [200] * len(storm)

    for event in events:
        assert wait_for_status(event["id"]).status == "processed"
    assert ledger(ids.customer) == [("plan_credits", ids.invoice, CREDITS["pro"])]
    assert len(emails(f"receipt:{ids.invoice}")) == 1


def test_two_workers_on_one_customer_keep_every_grant(api_server, worker):
    """Many invoices of one customer at once: the customer lock serialises the two worker
    processes, so no grant is lost and none is doubled."""
    first = known_customer(Ids())
    invoices = [first] + [first.next_invoice() for _ in range(7)]
    events = [stripe_event("invoice.paid", ids) for ids in invoices]
    storm = [event for event in events for _ in range(3)]
    random.shuffle(storm)

    assert deliver_concurrently(api_server.url, storm) == [200] * len(storm)

    for event in events:
        assert wait_for_status(event["id"]).status == "processed"
    assert sorted(source for _, source, _ in ledger(first.customer)) == sorted(
        ids.invoice for ids in invoices
    )
    assert sum(amount for _, _, amount in ledger(first.customer)) == 8 * CREDITS["pro"]
