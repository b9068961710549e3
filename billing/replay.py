"""Run a stored event again, whatever its status (the admin API and `billing replay`): the row
goes back to the queue if the registry handles its type and it belongs to the platform."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing.events import foreign_event_reason
from billing.registry import is_handled
from db.models import EventStatus, WebhookEvent
from db.webhook_events import is_stripe_event


def mark_for_replay(session: Session, *, stripe_event_id: str, live: bool) -> WebhookEvent | None:
    """Put the row back in the queue (or `ignored` if no task handles its type, or it belongs
    to the other mode or another account); the caller commits and then publishes its
    `stripe.<type>` task."""
    row = session.execute(
        select(WebhookEvent).where(is_stripe_event(stripe_event_id)).with_for_update()
    ).scalar_one_or_none()
    if row is None:
        return None
    foreign = foreign_event_reason(livemode=row.livemode, account=row.account, live=live)
    if foreign is not None:
        row.status = EventStatus.IGNORED
        row.last_error = foreign
        row.processed_at = func.now()
    elif is_handled(row.type):
        row.status = EventStatus.QUEUED
        row.enqueued_at = func.now()
    else:
        row.status = EventStatus.IGNORED
        row.processed_at = func.now()
    session.flush()
    return row
