"""Events: filter the stored events, read one (its payload redacted, attempts, error, timings
and what it changed), and replay it after a confirmation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response

from api import operations
from api.console.rendering import render
from api.console.security import CheckedFormDep, ConsoleAdminDep
from api.deps import PublisherDep, SessionDep, SettingsDep
from db import console_reads
from db.models import PENDING_STATUSES, EventStatus

router = APIRouter(prefix="/console/events", include_in_schema=False)

PAGE_SIZE = 50
Text = Annotated[str, Query(max_length=200)]


def _moment(value: str, name: str) -> datetime | None:
    """A `datetime-local` field (taken as UTC) or an ISO time; 422 with the field named."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise HTTPException(422, f"{name}: not a date and time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@router.get("")
def list_events(
    request: Request,
    me: ConsoleAdminDep,
    db: SessionDep,
    status: Text = "",
    type: Text = "",
    customer: Text = "",
    since: Text = "",
    until: Text = "",
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> Response:
    if status and status not in set(EventStatus):
        raise HTTPException(422, f"status: one of {', '.join(EventStatus)}")
    rows = console_reads.search_events(
        db,
        status=status or None,
        type=type.strip() or None,
        customer=customer.strip() or None,
        since=_moment(since, "since"),
        until=_moment(until, "until"),
        before_id=before,
        limit=PAGE_SIZE,
    )
    filters = {"status": status, "type": type, "customer": customer, "since": since, "until": until}
    return render(
        request,
        "events/list.html",
        {
            "me": me,
            "section": "events",
            "rows": rows,
            "filters": filters,
            "statuses": list(EventStatus),
            "next_before": rows[-1].id if len(rows) == PAGE_SIZE else None,
        },
    )


def _event_or_404(db: SessionDep, event_id: str) -> console_reads.WebhookEvent:
    row = console_reads.find_event(db, stripe_event_id=event_id)
    if row is None:
        raise HTTPException(404, f"No stored event {event_id}.")
    return row


@router.get("/{event_id}")
def event_detail(request: Request, me: ConsoleAdminDep, db: SessionDep, event_id: str) -> Response:
    row = _event_or_404(db, event_id)
    obj = (row.payload.get("data") or {}).get("object") or {}
    object_id = obj.get("id") if isinstance(obj, dict) else None
    effects = console_reads.event_effects(
        db, stripe_event_id=event_id, object_id=object_id if isinstance(object_id, str) else None
    )
    actions = console_reads.actions_on(db, target=event_id)
    return render(
        request,
        "events/detail.html",
        {
            "me": me,
            "section": "events",
            "row": row,
            "effects": effects,
            "actions": actions,
            "pending": row.status in PENDING_STATUSES,
            "flash": "Replay queued." if request.query_params.get("replayed") else None,
        },
    )


@router.get("/{event_id}/status")
def event_status(request: Request, me: ConsoleAdminDep, db: SessionDep, event_id: str) -> Response:
    """The status block alone, which htmx polls while the event is pending."""
    row = _event_or_404(db, event_id)
    return render(
        request,
        "events/_status.html",
        {"me": me, "row": row, "pending": row.status in PENDING_STATUSES},
    )


@router.get("/{event_id}/replay")
def confirm_replay(
    request: Request, me: ConsoleAdminDep, db: SessionDep, event_id: str
) -> Response:
    row = _event_or_404(db, event_id)
    return render(
        request,
        "confirm.html",
        {
            "me": me,
            "section": "events",
            "heading": f"Replay {event_id}?",
            "question": "Its handler runs again; every effect is keyed, so what it did "
            "before is not done twice.",
            "details": [("Type", row.type), ("Status", row.status), ("Attempts", row.attempts)],
            "action": f"/console/events/{event_id}/replay",
            "hidden": [],
            "button": "Replay the event",
            "cancel": f"/console/events/{event_id}",
            "danger": False,
        },
    )


@router.post("/{event_id}/replay")
def replay(
    me: CheckedFormDep,
    db: SessionDep,
    settings: SettingsDep,
    publisher: PublisherDep,
    event_id: str,
) -> Response:
    row = operations.replay_event(
        db,
        publisher=publisher,
        live=not settings.stripe_test_mode,
        event_id=event_id,
        actor=me.actor,
    )
    if row is None:
        raise HTTPException(404, f"No stored event {event_id}.")
    return RedirectResponse(f"/console/events/{event_id}?replayed=1", status_code=303)
