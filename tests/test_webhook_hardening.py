"""`POST /api/stripe/webhook` under malformed and hostile input: never a 500 (except when no
secret is configured), one refused row never fails its batch, and events of another mode or
of a Connect account are kept but never applied."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import pytest

from tests.conftest import WEBHOOK_SECRET, make_client
from tests.support.events import encode, make_event, signed, stored

WEBHOOK = "/api/stripe/webhook"
BOGUS_DIGEST = "0" * 64


def _now() -> int:
    return int(time.time())


def _incompressible(length: int) -> str:
    """PostgreSQL compresses a long index entry: only text like this overflows the index."""
    return secrets.token_urlsafe(length)[:length]


# --- Signature header and body: nothing a stranger sends is a 500 -------------------------


def test_a_body_that_is_not_utf8_with_a_bogus_signature_is_401(client):
    body = b'{"id": "evt_\xff\xfe"}'
    header = f"t={_now()},v1={BOGUS_DIGEST}"
    response = client.post(WEBHOOK, content=body, headers={"Stripe-Signature": header})
    assert response.status_code == 401
    assert response.json()["detail"]


def test_a_signed_body_that_is_not_utf8_is_400(client):
    body = b'{"id": "evt_\xff", "type": "invoice.paid", "data": {"object": {}}}'
    response = client.post(WEBHOOK, content=body, headers=signed(body, WEBHOOK_SECRET))
    assert response.status_code == 400


@pytest.mark.parametrize(
    "header",
    [
        b"t=%d,v1=\xff" + b"0" * 63,
        b"t=%d,v1=\xe9t\xe9",
        b"t=%d,v1=" + "é".encode() * 32,
        b"t=\xb2\xb3,v1=" + b"0" * 64,  # latin-1 superscript digits: str.isdigit() says yes
        b"t=" + "١٢٣".encode() + b",v1=" + b"0" * 64,  # Arabic-Indic digits: int() takes them
        b"t=" + b"9" * 5000 + b",v1=" + b"0" * 64,  # over int()'s 4300-digit limit
        b"t=-5,v1=" + b"0" * 64,
        b"t=%d",
        b"v1=" + b"0" * 64,
        b"t,v1",
        b"=,=,=",
        b",,,",
        b"t=%d,t=x,v1=,v0=" + b"0" * 64,
        b"\x00\x01\x7f",
    ],
)
def test_a_malformed_signature_header_is_401_never_a_500(client, header):
    body = encode(make_event("invoice.paid"))
    value = header.replace(b"%d", str(_now()).encode())
    response = client.post(WEBHOOK, content=body, headers={"Stripe-Signature": value})
    assert response.status_code == 401
    assert response.json()["detail"]


def test_a_non_ascii_signature_beside_the_right_one_still_verifies(client):
    event = make_event("invoice.paid")
    body = encode(event)
    header = signed(body, WEBHOOK_SECRET)["Stripe-Signature"].encode() + b",v1=\xff\xfe"
    response = client.post(WEBHOOK, content=body, headers={"Stripe-Signature": header})
    assert response.status_code == 200
    assert stored(event["id"]) is not None


@pytest.mark.parametrize("declared", [b"\xb2", b"9" * 5000], ids=["superscript-two", "5000-digits"])
def test_a_content_length_int_cannot_read_is_no_500(declared):
    """uvicorn's parsers refuse such a header; the endpoint must not rely on it."""
    from api.app import create_app
    from core.settings import load_settings

    body = encode(make_event("invoice.paid"))
    headers = [
        (b"content-length", declared),
        (b"stripe-signature", signed(body, WEBHOOK_SECRET)["Stripe-Signature"].encode()),
    ]
    status = asyncio.run(_post_raw(create_app(load_settings()), headers, body))
    assert status in (200, 400, 413)


async def _post_raw(app: Any, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
    """One request straight through ASGI: an HTTP client would fix the headers first."""
    sent: list[dict[str, Any]] = []
    chunks = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return chunks.pop(0) if chunks else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": WEBHOOK,
        "raw_path": WEBHOOK.encode(),
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    async with app.router.lifespan_context(app) as state:
        scope["state"] = dict(state or {})
        await app(scope, receive, send)
    return next(m["status"] for m in sent if m["type"] == "http.response.start")


# --- Lengths: ids and types the database index cannot hold are 400 ------------------------


@pytest.mark.parametrize("length", [256, 3000])
def test_an_event_id_over_255_characters_is_400(client, length):
    event = make_event("invoice.paid")
    event["id"] = ("evt_" + _incompressible(length))[:length]
    body = encode(event)
    response = client.post(WEBHOOK, content=body, headers=signed(body, WEBHOOK_SECRET))
    assert response.status_code == 400
    assert "255" in response.json()["detail"]


@pytest.mark.parametrize("length", [101, 3000])
def test_an_event_type_over_100_characters_is_400(client, length):
    event = make_event("invoice.paid")
    event["type"] = _incompressible(length)
    body = encode(event)
    response = client.post(WEBHOOK, content=body, headers=signed(body, WEBHOOK_SECRET))
    assert response.status_code == 400
    assert "100" in response.json()["detail"]
    assert stored(event["id"]) is None


def test_the_longest_allowed_id_and_type_are_stored(client):
    event = make_event("invoice.paid")
    event["id"] = (event["id"] + "x" * 255)[:255]
    event["type"] = "t" * 100
    body = encode(event)
    response = client.post(WEBHOOK, content=body, headers=signed(body, WEBHOOK_SECRET))
    assert response.status_code == 200
    assert stored(event["id"]).status == "ignored"


@pytest.mark.parametrize("created", [10**12, -(10**11), 2**63], ids=["year-33658", "bc", "bigint"])
def test_a_created_time_out_of_range_is_400(client, admin_headers, created):
    """Stored, a year past 9999 broke every read of the row (Python's datetime stops there)."""
    event = make_event("plan.created", created=created)
    body = encode(event)
    response = client.post(WEBHOOK, content=body, headers=signed(body, WEBHOOK_SECRET))
    assert response.status_code == 400
    assert "created" in response.json()["detail"]
    listing = client.get("/api/admin/webhook-events?type=plan.created", headers=admin_headers)
    assert listing.status_code == 200


# --- The batch writer: one refused row never fails the others ------------------------------


def _incoming(event: dict[str, Any], body: bytes | None = None) -> Any:
    from api.ingest import IncomingEvent

    return IncomingEvent(
        stripe_event_id=event["id"],
        type=event["type"],
        api_version=event.get("api_version"),
        livemode=False,
        account=None,
        created=event.get("created"),
        payload=encode(event) if body is None else body,
        status="received",
    )


def test_one_refused_row_does_not_fail_the_rest_of_its_batch(settings, monkeypatch):
    from api import ingest

    goods = [make_event("invoice.paid") for _ in range(5)]
    long_id = make_event("invoice.paid")
    long_id["id"] += _incompressible(3000)  # past the index row limit: ProgramLimitExceeded
    long_type = make_event("invoice.paid", type=_incompressible(3000))
    # Mixed in, so that each half of every split holds a good event.
    events = [goods[0], long_id, goods[1], long_type, goods[2], goods[3], goods[4]]

    batch_sizes: list[int] = []
    insert = ingest._Writer._insert

    async def recording_insert(self: Any, batch: list[Any]) -> Any:
        batch_sizes.append(len(batch))
        return await insert(self, batch)

    monkeypatch.setattr(ingest._Writer, "_insert", recording_insert)

    async def store_all() -> list[Any]:
        store = ingest.EventStore(settings.libpq_url, writers=1)
        await store.open()
        try:
            stores = [store.store(_incoming(e)) for e in events]
            return await asyncio.gather(*stores, return_exceptions=True)
        finally:
            await store.close()

    results = dict(zip((e["id"] for e in events), asyncio.run(store_all()), strict=True))

    assert batch_sizes[0] == len(events)  # all in one batch, so the test means something
    for good in goods:
        assert results[good["id"]].duplicate is False
        assert stored(good["id"]).payload == good
    for bad in (long_id, long_type):
        assert isinstance(results[bad["id"]], ingest.UnstorableEvent)
    assert stored(long_type["id"]) is None


def test_concurrent_deliveries_beside_an_oversized_id_are_all_stored(client):
    from concurrent.futures import ThreadPoolExecutor

    events = [make_event("plan.created") for _ in range(12)]
    events[5]["id"] += _incompressible(3000)
    bodies = [encode(e) for e in events]

    def deliver(body: bytes) -> int:
        return client.post(WEBHOOK, content=body, headers=signed(body, WEBHOOK_SECRET)).status_code

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        statuses = list(pool.map(deliver, bodies))

    assert statuses[5] == 400
    assert statuses[:5] + statuses[6:] == [200] * 11
    assert all(stored(e["id"]) is not None for i, e in enumerate(events) if i != 5)


# --- Mode and account: stored as `ignored`, with the reason, never applied ----------------


@pytest.fixture
def submitted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Row ids the endpoint hands to the dispatcher (to be enqueued for their task)."""
    from api.dispatch import EventDispatcher

    ids: list[int] = []
    submit = EventDispatcher.submit

    def recording_submit(self: EventDispatcher, row_id: int) -> None:
        ids.append(row_id)
        submit(self, row_id)

    monkeypatch.setattr(EventDispatcher, "submit", recording_submit)
    return ids


def _deliver(test_client: Any, event: dict[str, Any]) -> Any:
    body = encode(event)
    return test_client.post(WEBHOOK, content=body, headers=signed(body, WEBHOOK_SECRET))


def test_a_live_event_on_a_test_platform_is_ignored_and_says_why(client, submitted):
    event = make_event("invoice.paid", livemode=True)

    response = _deliver(client, event)

    assert response.status_code == 200
    assert response.json() == {"received": True, "duplicate": False, "event_id": event["id"]}
    row = stored(event["id"])
    assert row.status == "ignored"
    assert row.last_error == "livemode=true but the platform runs in test mode"
    assert row.processed_at is not None
    assert row.id not in submitted


def test_a_test_event_on_a_live_platform_is_ignored_and_says_why(submitted):
    test_event = make_event("invoice.paid", livemode=False)
    live_event = make_event("invoice.paid", livemode=True)
    with make_client(stripe_test_mode=False) as live_client:
        assert _deliver(live_client, test_event).status_code == 200
        assert _deliver(live_client, live_event).status_code == 200

    row = stored(test_event["id"])
    assert (row.status, row.last_error) == (
        "ignored",
        "livemode=false but the platform runs in live mode",
    )
    assert row.id not in submitted
    live_row = stored(live_event["id"])
    assert live_row.status != "ignored" and live_row.last_error is None
    assert live_row.id in submitted


def test_a_connect_event_is_ignored_and_says_why(client, submitted):
    event = make_event("invoice.paid", account="acct_1ConnectedXyZ")

    response = _deliver(client, event)

    assert response.status_code == 200
    row = stored(event["id"])
    assert row.status == "ignored"
    assert row.last_error == (
        "Connect event for account acct_1ConnectedXyZ; the platform handles its own account only"
    )
    assert row.id not in submitted


def test_an_ignored_event_delivered_again_is_a_duplicate(client, submitted):
    event = make_event("invoice.paid", livemode=True, account="acct_1ConnectedXyZ")
    first, again = _deliver(client, event), _deliver(client, event)
    assert (first.json()["duplicate"], again.json()["duplicate"]) == (False, True)
    row = stored(event["id"])
    assert "livemode=true" in row.last_error and "acct_1ConnectedXyZ" in row.last_error
    assert submitted == []


def test_the_sweep_leaves_an_event_of_another_mode_alone(client):
    from tasks.events.outbox import sweep_unprocessed_events

    event = make_event("invoice.paid", livemode=True)
    _deliver(client, event)

    sweep_unprocessed_events(stale_after_seconds=0)

    assert stored(event["id"]).status == "ignored"


def test_a_replay_leaves_an_event_of_another_mode_unapplied(client, admin_headers):
    event = make_event("invoice.paid", livemode=True)
    _deliver(client, event)

    replay = f"/api/admin/webhook-events/{event['id']}/replay"
    response = client.post(replay, headers=admin_headers)

    assert response.status_code == 202
    assert stored(event["id"]).status == "ignored"


def test_a_stored_event_of_another_mode_is_never_applied_by_its_task():
    """The task checks too: a row stored `received` before the endpoint refused such events
    (or written by hand) ends `ignored` with the reason, and grants nothing."""
    from sqlalchemy import insert

    from db.models import WebhookEvent
    from db.session import transaction
    from tasks.events.tasks import EVENT_TASKS

    event = make_event("invoice.paid", livemode=True)
    with transaction() as session:
        row_id = session.execute(
            insert(WebhookEvent)
            .values(
                stripe_event_id=event["id"],
                type=event["type"],
                livemode=True,
                payload=event,
                status="received",
            )
            .returning(WebhookEvent.id)
        ).scalar_one()

    EVENT_TASKS["invoice.paid"].apply(args=[row_id])

    row = stored(event["id"])
    assert row.status == "ignored"
    assert row.last_error == "livemode=true but the platform runs in test mode"
