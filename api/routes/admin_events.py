"""Admin API over `webhook_events`: list, inspect and replay stored Stripe events."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel
from sqlalchemy import select

from api.deps import AdminDep, SessionDep
from db.models import EventStatus, WebhookEvent
from tasks.events import outbox
from tasks.events.replay import mark_for_replay

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/admin/webhook-events", tags=["admin"], dependencies=[AdminDep])

MAX_LIMIT = 500


class WebhookEventOut(BaseModel):
    id: str
    type: str
    status: EventStatus
    attempts: int
    last_error: str | None
    received_at: datetime
    processed_at: datetime | None
    api_version: str | None
    livemode: bool
    account: str | None
    created: datetime | None

    @classmethod
    def of(cls, row: WebhookEvent) -> WebhookEventOut:
        return cls(
            id=row.stripe_event_id,
            type=row.type,
            status=EventStatus(row.status),
            attempts=row.attempts,
            last_error=row.last_error,
            received_at=row.received_at,
            processed_at=row.processed_at,
            api_version=row.api_version,
            livemode=row.livemode,
            account=row.account,
            created=row.stripe_created,
        )


class WebhookEventDetail(WebhookEventOut):
    payload: dict[str, Any]


class WebhookEventList(BaseModel):
    items: list[WebhookEventOut]


class ReplayAccepted(BaseModel):
    event_id: str
    status: EventStatus


@router.get("", response_model=WebhookEventList)
def list_webhook_events(
    session: SessionDep,
    status: EventStatus | None = None,
    type: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> WebhookEventList:
    """Stored events, newest first, filtered by status and type."""
    query = select(WebhookEvent).order_by(WebhookEvent.id.desc()).limit(limit)
    if status is not None:
        query = query.where(WebhookEvent.status == status)
    if type:
        query = query.where(WebhookEvent.type == type)
    return WebhookEventList(items=[WebhookEventOut.of(r) for r in session.scalars(query)])


def _get(session: SessionDep, event_id: str) -> WebhookEvent:
    row = session.scalar(select(WebhookEvent).where(WebhookEvent.stripe_event_id == event_id))
    if row is None:
        raise HTTPException(404, f"No stored event {event_id}.")
    return row


@router.get("/{event_id}", response_model=WebhookEventDetail)
def get_webhook_event(session: SessionDep, event_id: str) -> WebhookEventDetail:
    """One stored event, with its payload."""
    row = _get(session, event_id)
    return WebhookEventDetail(**WebhookEventOut.of(row).model_dump(), payload=row.payload)


@router.post("/{event_id}/replay", status_code=202, response_model=ReplayAccepted)
def replay_webhook_event(session: SessionDep, event_id: str) -> ReplayAccepted:
    """Process a stored event again; its handler's effects are idempotent."""
    row = mark_for_replay(session, stripe_event_id=event_id)
    if row is None:
        raise HTTPException(404, f"No stored event {event_id}.")
    session.commit()
    if row.status == EventStatus.QUEUED:
        try:
            outbox.publish([(row.id, row.type)])
        except Exception as exc:  # the row is `queued`; the sweep publishes it later
            log.warning("replay of %s left for the sweep: %s", event_id, exc)
    return ReplayAccepted(event_id=event_id, status=EventStatus(row.status))
