"""Hand stored events to their tasks: right after ingest, and again in the sweep.

The `webhook_events` row is the outbox. The API publishes one small message per batch of
new rows (`billing.enqueue_stored_events`) instead of one message per event, because a
Celery publish costs about 0.45 ms of CPU and the endpoint must take thousands of events a
second. Here, in a worker, the rows become `stripe.<type>` messages: one per type, carrying
up to `EVENTS_PER_MESSAGE` row ids in the order they were stored (`tasks.events.tasks` runs
each row in transactions of its own). Whatever is lost on the way (broker down, process
killed) is found by the sweep.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import ARRAY, BigInteger, any_, bindparam, case, func, update

from core.settings import get_settings
from db.models import PENDING_STATUSES, EventStatus, WebhookEvent
from db.outbox import claim_stale_rows
from db.session import transaction
from tasks.celery_app import app
from tasks.events.registry import HANDLERS, task_name

log = logging.getLogger(__name__)

SWEEP_BATCH_SIZE = 1000
# Row ids per `stripe.<type>` message. A batch runs on one worker process, one row after
# the other: large enough that Celery's per-message work is shared out, small enough that
# the two processes of a pool share a burst and one slow row delays few others.
EVENTS_PER_MESSAGE = 20


def publish(rows: Sequence[tuple[int, str]]) -> None:
    """Send `stripe.<type>([row_id, ...])` for the (row id, type) pairs, grouped by type in
    id order. The rows must be committed."""
    by_type: dict[str, list[int]] = defaultdict(list)
    for row_id, event_type in sorted(rows):
        by_type[event_type].append(row_id)
    with app.producer_or_acquire() as producer:
        for event_type, row_ids in by_type.items():
            for start in range(0, len(row_ids), EVENTS_PER_MESSAGE):
                batch = row_ids[start : start + EVENTS_PER_MESSAGE]
                app.send_task(task_name(event_type), args=[batch], producer=producer)


@app.task(name="billing.enqueue_stored_events", ignore_result=True)
def enqueue_stored_events(row_ids: list[int]) -> int:
    """Mark freshly stored rows `queued` and publish their per-type tasks."""
    with transaction() as session:
        rows = session.execute(_MARK_QUEUED, {"row_ids": row_ids}).all()
    publish([(row.id, row.type) for row in rows])
    return len(rows)


# Built once, on the table: every batch of stored events runs it (docs/decisions/0007).
_EVENTS = WebhookEvent.__table__.c
_MARK_QUEUED = (
    update(WebhookEvent.__table__)
    .where(
        _EVENTS.id == any_(bindparam("row_ids", type_=ARRAY(BigInteger))),
        _EVENTS.status == EventStatus.RECEIVED.value,
    )
    .values(status=EventStatus.QUEUED.value, enqueued_at=func.now())
    .returning(_EVENTS.id, _EVENTS.type)
)


@app.task(name="billing.sweep_unprocessed_events", ignore_result=True)
def sweep_unprocessed_events(stale_after_seconds: int | None = None) -> int:
    """Enqueue again every pending row untouched for longer than the stale limit."""
    stale_after = stale_after_seconds
    if stale_after is None:
        stale_after = get_settings().sweep_stale_after_seconds
    # A row a live worker is processing is locked and skipped; a dead worker's lock is gone.
    last_touched = func.greatest(
        WebhookEvent.received_at, WebhookEvent.enqueued_at, WebhookEvent.claimed_at
    )
    with transaction() as session:
        rows = claim_stale_rows(
            session,
            model=WebhookEvent,
            pending=WebhookEvent.status.in_(PENDING_STATUSES),
            last_touched=last_touched,
            stale_after_seconds=stale_after,
            limit=SWEEP_BATCH_SIZE,
            # A type dropped from the registry since it was stored has no task any more.
            values={
                "status": case(
                    (WebhookEvent.type.in_(list(HANDLERS)), EventStatus.QUEUED.value),
                    else_=EventStatus.IGNORED.value,
                )
            },
            returning=(WebhookEvent.id, WebhookEvent.type, WebhookEvent.status),
        )
    rows = [row for row in rows if row.status == EventStatus.QUEUED]
    if rows:
        log.warning("sweep: enqueuing %d stored events again", len(rows))
        publish([(row.id, row.type) for row in rows])
    return len(rows)
