"""From the endpoint to the handler through a real broker and a real Celery worker."""

from __future__ import annotations

import asyncio
import signal
import time

import httpx
import psycopg

from tasks.events.outbox import sweep_unprocessed_events
from tests.conftest import DATABASE_NAME, SERVER_URL, WEBHOOK_SECRET, make_client
from tests.support.events import (
    count_rows,
    encode,
    handled_lines,
    make_event,
    signed,
    stored,
    unique_customer,
    wait_for_status,
)

WEBHOOK = "/api/stripe/webhook"


def sweep_until_published(expected_row_id: int, timeout: float = 15.0) -> None:
    """Sweep with no staleness until the row is published (a killed worker's database
    session may take a moment to end and release its lock)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sweep_unprocessed_events(stale_after_seconds=0)
        row = stored_by_id(expected_row_id)
        if row.status != "processing" or row.attempts > 1:
            return
        time.sleep(0.2)


def stored_by_id(row_id: int):
    from db.models import WebhookEvent
    from db.session import new_session

    with new_session() as session:
        return session.get(WebhookEvent, row_id)


def test_an_event_is_processed_once_by_its_own_task(client, worker):
    event = make_event("invoice.paid")
    body = encode(event)
    client.post(WEBHOOK, content=body, headers=signed(body, WEBHOOK_SECRET))

    row = wait_for_status(event["id"])

    assert row.status == "processed"
    assert row.attempts == 1
    assert row.processed_at is not None
    worker.wait_for_log("stripe.invoice.paid[")
    assert handled_lines(worker.log(), event["id"]) == 1


def test_fifty_concurrent_deliveries_make_one_row_and_one_handler_run(api_server, worker):
    event = make_event("customer.subscription.updated")
    body = encode(event)

    async def deliver_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=api_server.url, timeout=30) as http:
            return await asyncio.gather(
                *(
                    http.post(WEBHOOK, content=body, headers=signed(body, WEBHOOK_SECRET))
                    for _ in range(50)
                )
            )

    responses = asyncio.run(deliver_all())

    assert [r.status_code for r in responses] == [200] * 50
    assert sorted(r.json()["duplicate"] for r in responses) == [False] + [True] * 49
    row = wait_for_status(event["id"])
    assert row.status == "processed"
    assert row.attempts == 1
    assert count_rows(event["id"]) == 1
    time.sleep(0.5)  # give a stray second run the chance to show itself
    assert handled_lines(worker.log(), event["id"]) == 1


def test_with_the_broker_down_the_event_is_acknowledged_and_processed_later(worker):
    event = make_event("invoice.paid")
    body = encode(event)
    with make_client(redis_url="redis://127.0.0.1:1/0") as no_broker:
        started = time.monotonic()
        response = no_broker.post(WEBHOOK, content=body, headers=signed(body, WEBHOOK_SECRET))
        elapsed = time.monotonic() - started
        time.sleep(1.5)  # the dispatcher has tried and given up by now

    assert response.status_code == 200
    assert elapsed < 2
    assert stored(event["id"]).status == "received"

    # The broker is back (the run's real one): the sweep hands the row to its task.
    sweep_unprocessed_events(stale_after_seconds=0)
    row = wait_for_status(event["id"])
    assert row.status == "processed"
    assert row.attempts == 1


def test_a_worker_killed_mid_task_leaves_the_event_to_be_processed_once_after_restart(
    client, worker
):
    customer = unique_customer()
    event = make_event("invoice.paid")
    event["data"]["object"]["customer"] = customer
    body = encode(event)
    lock_key = f"customer:{customer}"

    # Hold the customer's lock so the worker's task stops inside its transaction.
    with psycopg.connect(f"{SERVER_URL}/{DATABASE_NAME}", autocommit=True) as blocker:
        blocker.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (lock_key,))
        client.post(WEBHOOK, content=body, headers=signed(body, WEBHOOK_SECRET))
        claimed = wait_for_status(event["id"], ("processing",))
        assert claimed.attempts == 1
        time.sleep(0.3)

        worker.kill(signal.SIGKILL)

        blocker.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (lock_key,))

    assert stored(event["id"]).status == "processing"
    worker.start()
    sweep_until_published(claimed.id)

    row = wait_for_status(event["id"])
    assert row.status == "processed"
    assert row.attempts == 2
    assert handled_lines(worker.log(), event["id"]) == 1
