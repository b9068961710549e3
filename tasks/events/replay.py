"""Run a stored event again, whatever its status (the admin API and `billing replay`)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import EventStatus, WebhookEvent
from tasks.events.registry import is_handled


def mark_for_replay(session: Session, *, stripe_event_id: str) -> WebhookEvent | None:
    """Put the row back in the queue (or `ignored` if no task handles its type); the caller
    commits and then publishes it with `tasks.events.outbox.publish`."""
    row = session.execute(
        select(WebhookEvent)
        .where(WebhookEvent.stripe_event_id == stripe_event_id)
        .with_for_update()
    ).scalar_one_or_none()
    if row is None:
        return None
    if is_handled(row.type):
        row.status = EventStatus.QUEUED
        row.enqueued_at = func.now()
    else:
        row.status = EventStatus.IGNORED
        row.processed_at = func.now()
    session.flush()
    return row
