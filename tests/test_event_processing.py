"""From the endpoint to the handler through a real broker and a real Celery worker.

Every test here runs twice, on Redis and on RabbitMQ (the `broker` fixture): the outbox and
sweep guarantees (stored before the answer, processed exactly once whatever is lost on the
way) must hold on both.
"""

from __future__ import annotations

import asyncio
import signal
import time

import httpx
import psycopg

from tasks.events.outbox import sweep_unprocessed_events
from tests.conftest import DATABASE_NAME, SERVER_URL, WEBHOOK_SECRET, Broker
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
UNREACHABLE = {
    "redis": "redis://127.0.0.1:1/0",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:1//",
}


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


def sweep_until_settled(stripe_event_ids: list[str], timeout: float = 30.0) -> None:
    """Sweep with no staleness until every row is processed (the sweep's duplicates of rows
    a live worker holds are part of what the caller tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sweep_unprocessed_events(stale_after_seconds=0)
        if all(stored(event_id).status == "processed" for event_id in stripe_event_ids):
            return
        time.sleep(0.5)


def test_an_event_is_processed_once_by_its_own_task(broker: Broker):
    event = make_event("invoice.paid")
    body = encode(event)
    worker = broker.worker
    with broker.client() as client:
        client.post(WEBHOOK, content=body, headers=signed(body, WEBHOOK_SECRET))

    row = wait_for_status(event["id"])

    assert row.status == "processed"
    assert row.attempts == 1
    assert row.processed_at is not None
    worker.wait_for_log("stripe.invoice.paid[")
    assert handled_lines(worker.log(), event["id"]) == 1


def test_fifty_concurrent_deliveries_make_one_row_and_one_handler_run(broker: Broker):
    event = make_event("customer.subscription.updated")
    body = encode(event)
    api_server = broker.api_server()

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
    assert handled_lines(broker.worker.log(), event["id"]) == 1


def test_with_the_broker_down_the_event_is_acknowledged_and_processed_later(broker: Broker):
    event = make_event("invoice.paid")
    body = encode(event)
    with broker.client(broker_url=UNREACHABLE[broker.name]) as no_broker:
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
    broker: Broker,
):
    worker = broker.worker
    customer = unique_customer()
    event = make_event("invoice.paid")
    event["data"]["object"]["customer"] = customer
    body = encode(event)
    lock_key = f"customer:{customer}"

    # Hold the customer's lock so the worker's task stops inside its transaction.
    with psycopg.connect(f"{SERVER_URL}/{DATABASE_NAME}", autocommit=True) as blocker:
        blocker.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (lock_key,))
        with broker.client() as client:
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
    # The killed worker's message is delivered again, and the sweep publishes one of its
    # own: when both reach the two pool processes at once, the second may claim the row
    # between the first's claim and its lock (the first then stands down, `superseded`).
    # Either way the handler ran once.
    assert row.attempts in (2, 3)
    assert handled_lines(worker.log(), event["id"]) == 1


def test_a_worker_killed_mid_burst_leaves_every_event_processed_once(broker: Broker):
    worker = broker.worker
    blocked_customer = unique_customer()
    events = [make_event("invoice.paid") for _ in range(20)]
    events[0]["data"]["object"]["customer"] = blocked_customer
    for event in events[1:]:
        event["data"]["object"]["customer"] = unique_customer()
    lock_key = f"customer:{blocked_customer}"

    # The first event's task stops inside its transaction, so the kill lands mid-task while
    # the rest of the burst is spread over the worker's pool, its prefetch and the broker.
    with psycopg.connect(f"{SERVER_URL}/{DATABASE_NAME}", autocommit=True) as blocker:
        blocker.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (lock_key,))
        with broker.client() as client:
            for event in events:
                body = encode(event)
                client.post(WEBHOOK, content=body, headers=signed(body, WEBHOOK_SECRET))
        wait_for_status(events[0]["id"], ("processing",))
        worker.kill(signal.SIGKILL)
        blocker.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (lock_key,))

    worker.start()
    sweep_until_settled([event["id"] for event in events])

    assert [stored(event["id"]).status for event in events] == ["processed"] * len(events)
    time.sleep(0.5)  # give a stray second run (a redelivery, a sweep's copy) time to show
    assert [handled_lines(worker.log(), event["id"]) for event in events] == [1] * len(events)


def test_a_database_connection_lost_mid_task_is_retried_and_processed_once(broker: Broker):
    customer = unique_customer()
    event = make_event("invoice.paid")
    event["data"]["object"]["customer"] = customer
    body = encode(event)
    lock_key = f"customer:{customer}"

    # What a PostgreSQL restart or failover does to a worker (the shared server cannot be
    # restarted here): its connection is cut in the middle of the task's transaction.
    with psycopg.connect(f"{SERVER_URL}/{DATABASE_NAME}", autocommit=True) as blocker:
        blocker.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (lock_key,))
        with broker.client() as client:
            client.post(WEBHOOK, content=body, headers=signed(body, WEBHOOK_SECRET))
        wait_for_status(event["id"], ("processing",))
        waiting = wait_for_lock_waiter(blocker)
        blocker.execute("SELECT pg_terminate_backend(%s)", (waiting,))
        blocker.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (lock_key,))

    # A transient error: retried with backoff (on RabbitMQ through its delayed delivery).
    row = wait_for_status(event["id"], timeout=30)
    assert row.status == "processed"
    # The killed worker's message is delivered again, and the sweep publishes one of its
    # own: when both reach the two pool processes at once, the second may claim the row
    # between the first's claim and its lock (the first then stands down, `superseded`).
    # Either way the handler ran once.
    assert row.attempts in (2, 3)
    assert handled_lines(broker.worker.log(), event["id"]) == 1


def wait_for_lock_waiter(conn: psycopg.Connection, timeout: float = 15.0) -> int:
    """The pid of the backend waiting for an advisory lock in the run's database."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
        ).fetchone()
        if row is not None:
            return row[0]
        time.sleep(0.05)
    raise AssertionError("no backend waited for the advisory lock")
