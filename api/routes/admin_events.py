"""Admin API over `webhook_events`: list, inspect and replay stored Stripe events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from sqlalchemy import select
from sqlalchemy.orm import defer

from api.audit import api_token_actor
from api.deps import AdminDep, NoNulParamsDep, PublisherDep, SessionDep, SettingsDep
from api.operations import replay_event
from api.schemas import (
    VALIDATION_ERROR,
    ReplayAccepted,
    WebhookEventDetail,
    WebhookEventList,
    WebhookEventOut,
)
from db.models import EventStatus, WebhookEvent
from db.webhook_events import is_stripe_event

router = APIRouter(
    prefix="/api/admin/webhook-events",
    tags=["admin"],
    dependencies=[AdminDep, NoNulParamsDep],
    responses=VALIDATION_ERROR,
)

MAX_LIMIT = 500


@router.get("", response_model=WebhookEventList)
def list_webhook_events(
    session: SessionDep,
    status: EventStatus | None = None,
    type: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> WebhookEventList:
    """Stored events, newest first, filtered by status and type."""
    # The list shows no payload: left unread, a page of 500 does not fetch, decompress and
    # parse 2 MB of JSON it would throw away.
    query = (
        select(WebhookEvent)
        .options(defer(WebhookEvent.payload))
        .order_by(WebhookEvent.id.desc())
        .limit(limit)
    )
    if status is not None:
        query = query.where(WebhookEvent.status == status)
    if type:
        query = query.where(WebhookEvent.type == type)
    return WebhookEventList(
        items=[WebhookEventOut.model_validate(r) for r in session.scalars(query)]
    )


def _get(session: SessionDep, event_id: str) -> WebhookEvent:
    row = session.scalar(select(WebhookEvent).where(is_stripe_event(event_id)))
    if row is None:
        raise HTTPException(404, f"No stored event {event_id}.")
    return row


@router.get("/{event_id}", response_model=WebhookEventDetail)
def get_webhook_event(session: SessionDep, event_id: str) -> WebhookEventDetail:
    """One stored event, with its payload."""
    return WebhookEventDetail.model_validate(_get(session, event_id))


@router.post("/{event_id}/replay", status_code=202, response_model=ReplayAccepted)
def replay_webhook_event(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    publisher: PublisherDep,
    event_id: str,
) -> ReplayAccepted:
    """Process a stored event again; its handler's effects are idempotent."""
    row = replay_event(
        session,
        publisher=publisher,
        live=not settings.stripe_test_mode,
        event_id=event_id,
        actor=api_token_actor(request),
    )
    if row is None:
        raise HTTPException(404, f"No stored event {event_id}.")
    return ReplayAccepted(event_id=event_id, status=EventStatus(row.status))
