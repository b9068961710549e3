"""How a `stripe.<type>` task settles its row: processed, retried, failed, skipped.

The tasks run in this process (`Task.apply`) against the real database, with a handler of
the test's own put in the registry; no worker sees these rows because nothing publishes them.
"""

from __future__ import annotations

import psycopg
import pytest
import stripe
from sqlalchemy import select

from db.models import WebhookEvent
from db.session import new_session
from tasks.events import registry
from tasks.events.tasks import EVENT_TASKS
from tests.support.events import make_event, store_directly, stored, unique_customer


def run_task(event_type: str, row_id: int) -> None:
    EVENT_TASKS[event_type].apply(args=[row_id])


def test_a_handler_effect_and_the_processed_status_commit_together(monkeypatch):
    seen: list[str] = []

    def handler(session, ctx, event):
        # The handler runs inside the transaction that will mark its row processed.
        status = session.scalar(select(WebhookEvent.status).where(WebhookEvent.id == event.row_id))
        seen.append(status)

    monkeypatch.setitem(registry.HANDLERS, "invoice.paid", handler)
    event = make_event("invoice.paid")
    row_id = store_directly(event)

    run_task("invoice.paid", row_id)

    row = stored(event["id"])
    assert seen == ["processing"]
    assert (row.status, row.attempts, row.last_error) == ("processed", 1, None)


def test_bad_data_fails_the_row_at_once_with_its_error(monkeypatch):
    calls = []

    def handler(session, ctx, event):
        calls.append(event.id)
        raise ValueError("invoice has no lines")

    monkeypatch.setitem(registry.HANDLERS, "invoice.paid", handler)
    event = make_event("invoice.paid")
    row_id = store_directly(event)

    run_task("invoice.paid", row_id)

    row = stored(event["id"])
    assert len(calls) == 1
    assert row.status == "failed"
    assert row.last_error == "ValueError: invoice has no lines"
    assert row.processed_at is None


def test_a_failed_handler_leaves_none_of_its_writes(monkeypatch):
    def handler(session, ctx, event):
        session.execute(
            WebhookEvent.__table__.update()
            .where(WebhookEvent.id == event.row_id)
            .values(api_version="written-by-the-failing-handler")
        )
        raise ValueError("boom")

    monkeypatch.setitem(registry.HANDLERS, "invoice.paid", handler)
    event = make_event("invoice.paid")
    row_id = store_directly(event)

    run_task("invoice.paid", row_id)

    row = stored(event["id"])
    assert row.status == "failed"
    assert row.api_version == event["api_version"]


@pytest.mark.parametrize(
    "error",
    [
        psycopg.OperationalError("server closed the connection unexpectedly"),
        stripe.RateLimitError("Too many requests", http_status=429),
        stripe.APIError("Stripe is having trouble", http_status=503),
        stripe.APIConnectionError("Could not connect to Stripe"),
        ConnectionResetError("reset by peer"),
    ],
    ids=["db-lost", "stripe-429", "stripe-503", "stripe-unreachable", "socket-reset"],
)
def test_a_transient_error_is_retried_until_it_succeeds(monkeypatch, error):
    failures = [error, error]

    def handler(session, ctx, event):
        if failures:
            raise failures.pop()

    monkeypatch.setitem(registry.HANDLERS, "invoice.paid", handler)
    event = make_event("invoice.paid")
    row_id = store_directly(event)

    run_task("invoice.paid", row_id)

    row = stored(event["id"])
    assert row.status == "processed"
    assert row.attempts == 3
    assert row.last_error is None


@pytest.mark.parametrize(
    "error",
    [
        stripe.InvalidRequestError("No such customer: 'cus_x'", param="id", http_status=404),
        stripe.AuthenticationError("Invalid API key", http_status=401),
        KeyError("subscription"),
    ],
    ids=["stripe-404", "stripe-auth", "bad-data"],
)
def test_a_permanent_error_is_not_retried(monkeypatch, error):
    calls = []

    def handler(session, ctx, event):
        calls.append(1)
        raise error

    monkeypatch.setitem(registry.HANDLERS, "invoice.paid", handler)
    event = make_event("invoice.paid")
    run_task("invoice.paid", store_directly(event))

    assert len(calls) == 1
    assert stored(event["id"]).status == "failed"


def test_retries_run_out_and_fail_the_row(monkeypatch):
    monkeypatch.setattr(EVENT_TASKS["invoice.paid"], "max_retries", 2)

    def handler(session, ctx, event):
        raise stripe.APIConnectionError("Could not connect to Stripe")

    monkeypatch.setitem(registry.HANDLERS, "invoice.paid", handler)
    event = make_event("invoice.paid")
    run_task("invoice.paid", store_directly(event))

    row = stored(event["id"])
    assert row.status == "failed"
    assert row.attempts == 3
    assert "Could not connect to Stripe" in row.last_error


@pytest.mark.parametrize("status", ["processed", "failed", "ignored"])
def test_a_settled_row_is_not_run_again_by_a_late_message(monkeypatch, status):
    calls = []
    monkeypatch.setitem(registry.HANDLERS, "invoice.paid", lambda s, c, e: calls.append(e.id))
    event = make_event("invoice.paid")
    row_id = store_directly(event, status=status)

    run_task("invoice.paid", row_id)

    assert calls == []
    assert stored(event["id"]).status == status


def test_a_row_locked_by_a_live_worker_is_skipped(monkeypatch):
    calls = []
    monkeypatch.setitem(registry.HANDLERS, "invoice.paid", lambda s, c, e: calls.append(e.id))
    event = make_event("invoice.paid")
    row_id = store_directly(event, status="processing", attempts=1)

    with new_session() as holder, holder.begin():
        holder.execute(select(WebhookEvent).where(WebhookEvent.id == row_id).with_for_update())
        run_task("invoice.paid", row_id)

    assert calls == []
    assert stored(event["id"]).attempts == 1


def test_a_claim_left_by_a_dead_worker_is_taken_over(monkeypatch):
    calls = []
    monkeypatch.setitem(registry.HANDLERS, "invoice.paid", lambda s, c, e: calls.append(e.id))
    event = make_event("invoice.paid")
    row_id = store_directly(event, status="processing", attempts=1)

    run_task("invoice.paid", row_id)

    row = stored(event["id"])
    assert calls == [event["id"]]
    assert (row.status, row.attempts) == ("processed", 2)


def test_a_replayed_type_that_is_no_longer_handled_ends_ignored():
    from db.session import transaction
    from tasks.context import worker_context
    from tasks.events.processing import Outcome, apply, claim

    event = make_event("plan.created")
    row_id = store_directly(event, status="queued")
    with transaction() as session:
        taken = claim(session, row_id=row_id)
    assert taken is not None
    assert apply(taken, ctx=worker_context()) == Outcome.IGNORED
    assert stored(event["id"]).status == "ignored"


# --- A message for a batch of rows -------------------------------------------------------


def run_batch(event_type: str, row_ids: list[int]) -> None:
    EVENT_TASKS[event_type].apply(args=[row_ids])


def batch_of(count: int, *, customers: list[str] | None = None) -> list[dict]:
    events = [make_event("invoice.paid") for _ in range(count)]
    for event, customer in zip(events, customers or [], strict=False):
        event["data"]["object"]["customer"] = customer
    return events


def test_a_batch_applies_every_row_and_commits_their_effects_with_their_statuses(monkeypatch):
    seen: list[str] = []
    monkeypatch.setitem(registry.HANDLERS, "invoice.paid", lambda s, c, e: seen.append(e.id))
    events = batch_of(5)
    row_ids = [store_directly(event) for event in events]

    run_batch("invoice.paid", row_ids)

    assert sorted(seen) == sorted(event["id"] for event in events)
    rows = [stored(event["id"]) for event in events]
    assert [(row.status, row.attempts) for row in rows] == [("processed", 1)] * 5


def test_a_row_that_fails_fails_alone_and_the_rest_of_its_batch_is_processed_once(monkeypatch):
    events = batch_of(4)
    poisoned = events[2]["id"]

    def handler(session, ctx, event):
        # A write of each event's own: the rows applied before the failure are rolled back
        # with it and applied again, and must end with their write once.
        session.execute(
            WebhookEvent.__table__.update()
            .where(WebhookEvent.id == event.row_id)
            .values(
                api_version=(
                    session.scalar(
                        select(WebhookEvent.api_version).where(WebhookEvent.id == event.row_id)
                    )
                    or ""
                )
                + "+"
            )
        )
        if event.id == poisoned:
            raise ValueError("invoice has no lines")

    monkeypatch.setitem(registry.HANDLERS, "invoice.paid", handler)
    row_ids = [store_directly(event) for event in events]

    run_batch("invoice.paid", row_ids)

    for event in events:
        row = stored(event["id"])
        if event["id"] == poisoned:
            assert (row.status, row.last_error) == ("failed", "ValueError: invoice has no lines")
            assert row.api_version == event["api_version"]  # none of its writes
        else:
            assert (row.status, row.attempts) == ("processed", 1)
            assert row.api_version == event["api_version"] + "+"  # written once


def test_a_transient_error_retries_only_its_row_and_the_others_are_not_held_back(monkeypatch):
    events = batch_of(3)
    flaky = events[1]["id"]
    failures = [stripe.APIConnectionError("Could not connect to Stripe")]
    applied: list[str] = []

    def handler(session, ctx, event):
        if event.id == flaky and failures:
            raise failures.pop()
        applied.append(event.id)

    monkeypatch.setitem(registry.HANDLERS, "invoice.paid", handler)
    row_ids = [store_directly(event) for event in events]

    run_batch("invoice.paid", row_ids)

    rows = {event["id"]: stored(event["id"]) for event in events}
    assert all(row.status == "processed" for row in rows.values())
    assert rows[flaky].attempts == 2  # its retry, in a message of its own
    assert [rows[e["id"]].attempts for e in events if e["id"] != flaky] == [1, 1]
    assert applied.count(flaky) == 1


def test_a_row_already_settled_or_held_elsewhere_is_skipped_within_a_batch(monkeypatch):
    calls: list[str] = []
    monkeypatch.setitem(registry.HANDLERS, "invoice.paid", lambda s, c, e: calls.append(e.id))
    done, fresh = batch_of(2)
    row_ids = [store_directly(done, status="processed"), store_directly(fresh)]

    run_batch("invoice.paid", row_ids)

    assert calls == [fresh["id"]]
    assert stored(done["id"]).attempts == 0


def test_a_foreign_event_in_a_batch_is_kept_with_its_reason_and_the_rest_are_applied(
    monkeypatch,
):
    calls: list[str] = []
    monkeypatch.setitem(registry.HANDLERS, "invoice.paid", lambda s, c, e: calls.append(e.id))
    events = batch_of(3, customers=[unique_customer() for _ in range(3)])
    events[1]["livemode"] = True  # a live event reaching a test-mode platform
    row_ids = [store_directly(event) for event in events]

    run_batch("invoice.paid", row_ids)

    rows = [stored(event["id"]) for event in events]
    assert [row.status for row in rows] == ["processed", "ignored", "processed"]
    assert rows[1].last_error and "live" in rows[1].last_error
    assert [row.last_error for row in (rows[0], rows[2])] == [None, None]
    assert sorted(calls) == sorted([events[0]["id"], events[2]["id"]])


def test_batches_sharing_customers_in_opposite_orders_both_finish_without_a_deadlock(
    monkeypatch,
):
    """Each batch locks its customers in customer order, whatever order its rows came in: two
    batches holding the same customers wait for one another instead of deadlocking (which
    PostgreSQL would break by failing one of them, a second attempt)."""
    import threading
    import time as clock

    def handler(session, ctx, event):
        clock.sleep(0.2)  # hold each customer's lock long enough for the other batch to meet it

    monkeypatch.setitem(registry.HANDLERS, "invoice.paid", handler)
    customers = [unique_customer() for _ in range(3)]
    first = batch_of(3, customers=customers)
    second = batch_of(3, customers=list(reversed(customers)))
    batches = [[store_directly(e) for e in first], [store_directly(e) for e in second]]

    threads = [threading.Thread(target=run_batch, args=("invoice.paid", b)) for b in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    rows = [stored(event["id"]) for event in first + second]
    assert [(row.status, row.attempts) for row in rows] == [("processed", 1)] * 6
