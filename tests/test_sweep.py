"""The sweep re-enqueues stored events that were left behind, and nothing else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from db.models import WebhookEvent
from db.session import new_session
from tasks.events.outbox import sweep_unprocessed_events
from tests.support.events import make_event, store_directly, stored, wait_for_status

LONG_AGO = datetime.now(UTC) - timedelta(hours=1)


def test_a_row_left_received_past_the_stale_limit_is_processed(worker):
    event = make_event("invoice.paid")
    store_directly(event, received_at=LONG_AGO)

    assert sweep_unprocessed_events() >= 1

    row = wait_for_status(event["id"])
    assert (row.status, row.attempts) == ("processed", 1)


def test_a_queued_message_that_was_lost_is_published_again(worker):
    event = make_event("invoice.paid")
    store_directly(event, status="queued", received_at=LONG_AGO, enqueued_at=LONG_AGO)

    sweep_unprocessed_events()

    assert wait_for_status(event["id"]).status == "processed"


def test_recent_rows_are_left_alone():
    event = make_event("invoice.paid")
    store_directly(event)

    sweep_unprocessed_events()

    assert stored(event["id"]).status == "received"


def test_a_retry_scheduled_in_the_future_is_not_stale():
    event = make_event("invoice.paid")
    store_directly(
        event,
        status="queued",
        received_at=LONG_AGO,
        enqueued_at=datetime.now(UTC) + timedelta(minutes=5),
    )

    sweep_unprocessed_events()

    assert stored(event["id"]).enqueued_at > datetime.now(UTC)


def test_a_row_a_live_worker_holds_is_not_touched():
    event = make_event("invoice.paid")
    row_id = store_directly(event, status="processing", attempts=1, claimed_at=LONG_AGO)

    with new_session() as holder, holder.begin():
        holder.execute(select(WebhookEvent).where(WebhookEvent.id == row_id).with_for_update())
        sweep_unprocessed_events()

    row = stored(event["id"])
    assert (row.status, row.enqueued_at) == ("processing", None)


def test_settled_rows_are_never_swept():
    events = [make_event("invoice.paid") for _ in range(3)]
    for event, status in zip(events, ("processed", "failed", "ignored"), strict=True):
        store_directly(event, status=status, received_at=LONG_AGO)

    sweep_unprocessed_events()

    assert [stored(e["id"]).enqueued_at for e in events] == [None, None, None]
