"""`POST /api/stripe/webhook`: verify, store, answer. No billing work happens here.

The endpoint is registered twice. `router` holds FastAPI routes that document it in the
OpenAPI schema (and would answer the same way). The requests themselves are answered by
plain Starlette routes for `WEBHOOK_PATHS`, which `api.app` installs ahead of every
router: the endpoint takes only the raw request, so FastAPI's request handling (dependency
solving, query parsing) and the included routers' matching are pure overhead on the hottest
path; under load they took about 15% of the API process's CPU (py-spy).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel
from starlette.requests import ClientDisconnect

from api.ingest import IncomingEvent, StorageUnavailable, UnstorableEvent
from api.signature import parse_header, verify_signature
from billing.events import foreign_event_reason
from billing.registry import HANDLERS, is_handled
from core.metrics import OTHER, UNKNOWN, WEBHOOK_EVENTS_RECEIVED
from core.metrics import ReceivedOutcome as Outcome

WEBHOOK_PATHS = ("/api/stripe/webhook", "/api/billing/webhook")  # the second is an alias

# What `webhook_events` can index and Python can read back: Stripe's own ids and types are
# far shorter (`evt_` + 24, `customer.subscription.pending_update_applied`).
MAX_EVENT_ID_LENGTH = 255
MAX_EVENT_TYPE_LENGTH = 100
MAX_CREATED = 253_402_300_799  # 9999-12-31T23:59:59Z: datetime's last second
MAX_LENGTH_DIGITS = 18  # a Content-Length of more digits is over any limit
NOT_AN_EVENT = "Body is not a JSON Stripe event object."
# PostgreSQL text cannot hold NUL: the payload column (json) would keep the escape, but no
# field read out of it could be, and the columns beside it refuse it (decision 0008).
NUL_CHARACTER = "Body has a NUL character (\\u0000), which cannot be stored."

router = APIRouter(tags=["stripe"])


class WebhookReceipt(BaseModel):
    received: bool
    duplicate: bool
    event_id: str


class Problem(BaseModel):
    detail: str


# Every label pair the endpoint counts, made once: `.labels()` per delivery takes a lock and
# builds a tuple on the hot path, and each series is exported from the start at
# 0, so that a rate sees the first delivery of a kind.
_LABEL_PAIRS = [
    *((t, o) for t in HANDLERS for o in (Outcome.STORED, Outcome.DUPLICATE, Outcome.REJECTED)),
    *((t, Outcome.ERROR) for t in HANDLERS),
    *((OTHER, o) for o in (Outcome.IGNORED, Outcome.DUPLICATE, Outcome.REJECTED, Outcome.ERROR)),
    (UNKNOWN, Outcome.REJECTED),
    (UNKNOWN, Outcome.ERROR),
]
_RECEIVED = {pair: WEBHOOK_EVENTS_RECEIVED.labels(*pair) for pair in _LABEL_PAIRS}


def _count(event_type: str, outcome: Outcome) -> None:
    """`event_type` is a handled type, OTHER or UNKNOWN: never a sender's string."""
    counter = _RECEIVED.get((event_type, outcome))
    if counter is None:  # a type registered after this module was imported
        counter = WEBHOOK_EVENTS_RECEIVED.labels(event_type, outcome)
    counter.inc()


def _type_label(event: IncomingEvent) -> str:
    return event.type if event.status == "received" else OTHER


def _answer(status: int, content: dict[str, Any]) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")


def _problem(status: int, detail: str) -> Response:
    return _answer(status, {"detail": detail})


async def _read_capped(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it grows past the limit."""
    declared = request.headers.get("content-length")
    # isascii: str.isdigit() also says yes to "²", which int() refuses; and int() refuses
    # over 4,300 digits.
    if (
        declared is not None
        and declared.isascii()
        and declared.isdigit()
        and (len(declared) > MAX_LENGTH_DIGITS or int(declared) > limit)
    ):
        return None
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > limit:
            return None
    return bytes(chunks)


def _has_nul(value: object) -> bool:
    """Whether a parsed JSON value holds a NUL character in any key or string."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in key or _has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


def _parse_event(body: bytes, *, live: bool) -> IncomingEvent | str:
    """The event to store, or why it is refused (a 400's detail)."""
    try:
        event = orjson.loads(body)  # refuses bytes that are not UTF-8, and lone surrogates
    except orjson.JSONDecodeError:
        return NOT_AN_EVENT
    if not isinstance(event, dict):
        return NOT_AN_EVENT
    event_id, event_type, data = event.get("id"), event.get("type"), event.get("data")
    if not (isinstance(event_id, str) and event_id and isinstance(event_type, str) and event_type):
        return NOT_AN_EVENT
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        return NOT_AN_EVENT
    # The escape is looked for in the bytes (rare) before the parsed event is walked (rarer).
    if b"\\u0000" in body and _has_nul(event):
        return NUL_CHARACTER
    # Checked here, not left to the database: an id or a type past the btree limit (~2.7 KB)
    # fails its whole INSERT, and with it the batch that shares the statement.
    if len(event_id) > MAX_EVENT_ID_LENGTH:
        return f"Event id is over {MAX_EVENT_ID_LENGTH} characters."
    if len(event_type) > MAX_EVENT_TYPE_LENGTH:
        return f"Event type is over {MAX_EVENT_TYPE_LENGTH} characters."
    created = event.get("created")
    if not isinstance(created, int) or isinstance(created, bool):
        created = None
    elif not 0 <= created <= MAX_CREATED:
        return "Event created is not a Unix time between 1970 and 9999."
    api_version = event.get("api_version")
    account = event.get("account")
    livemode = event.get("livemode") is True
    not_ours = foreign_event_reason(livemode=livemode, account=account, live=live)
    return IncomingEvent(
        stripe_event_id=event_id,
        type=event_type,
        api_version=api_version if isinstance(api_version, str) else None,
        livemode=livemode,
        account=account if isinstance(account, str) else None,
        created=created,
        payload=body,
        status="received" if not_ours is None and is_handled(event_type) else "ignored",
        last_error=not_ours,
    )


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": WebhookReceipt,
        "description": "Stored (or stored before: `duplicate`). An event of another mode "
        "or a Connect account is stored as `ignored` and never applied.",
    },
    400: {
        "model": Problem,
        "description": "No Stripe-Signature header, not a JSON event, or an id, type or "
        "`created` out of bounds.",
    },
    401: {"model": Problem, "description": "No configured secret signed it, or it is stale."},
    413: {"model": Problem, "description": "The body is over the size limit."},
    500: {"model": Problem, "description": "No webhook secret is configured."},
    503: {"model": Problem, "description": "The database could not store it; Stripe retries."},
}


@router.post(WEBHOOK_PATHS[0], response_model=WebhookReceipt, responses=_RESPONSES)
@router.post(
    WEBHOOK_PATHS[1],
    response_model=WebhookReceipt,
    responses=_RESPONSES,
    include_in_schema=False,
)
async def receive_stripe_webhook(request: Request) -> Response:
    """Verify a Stripe delivery, store it in `webhook_events`, and acknowledge it."""
    state = request.app.state
    settings = state.settings
    header = request.headers.get("stripe-signature", "").strip()
    if not header:
        _count(UNKNOWN, Outcome.REJECTED)
        return _problem(400, "Missing Stripe-Signature header.")
    secrets = state.webhook_secrets
    if not secrets:
        _count(UNKNOWN, Outcome.ERROR)
        return _problem(500, "No webhook secret is configured (STRIPE_WEBHOOK_SECRET).")
    try:
        body = await _read_capped(request, settings.webhook_max_bytes)
    except ClientDisconnect:
        # The sender went away mid-body: nobody reads this answer, and it is no server error
        # (left to Starlette it became a 500 and a Sentry report per aborted upload).
        _count(UNKNOWN, Outcome.REJECTED)
        return _problem(400, "The request body ended early.")
    if body is None:
        _count(UNKNOWN, Outcome.REJECTED)
        return _problem(413, f"Body is over {settings.webhook_max_bytes} bytes.")
    if not verify_signature(body, header, secrets, settings.webhook_tolerance_seconds):
        _count(UNKNOWN, Outcome.REJECTED)
        if parse_header(header) is None:  # parsed again only on this rare path
            return _problem(401, "Stripe-Signature is not of the form t=...,v1=....")
        return _problem(401, "Signature does not match, or its timestamp is too old.")
    event = _parse_event(body, live=not settings.stripe_test_mode)
    if isinstance(event, str):
        _count(UNKNOWN, Outcome.REJECTED)
        return _problem(400, event)
    try:
        stored = await state.event_store.store(event)
    except UnstorableEvent as exc:
        _count(_type_label(event), Outcome.REJECTED)
        return _problem(400, f"Event cannot be stored: {exc}")
    except StorageUnavailable:
        _count(_type_label(event), Outcome.ERROR)
        return _problem(503, "Event could not be stored; deliver it again.")
    if stored.duplicate:
        _count(_type_label(event), Outcome.DUPLICATE)
    elif event.status == "received":
        _count(event.type, Outcome.STORED)
    else:
        _count(OTHER, Outcome.IGNORED)
    if stored.row_id is not None and event.status == "received":
        state.dispatcher.submit(stored.row_id)
    return _answer(
        200, {"received": True, "duplicate": stored.duplicate, "event_id": event.stripe_event_id}
    )
