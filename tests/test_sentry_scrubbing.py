"""What leaves for Sentry, read where it arrives: a local HTTP server takes the SDK's
envelopes as sentry.io would, from the API in this process and from a real worker process.

No email address, credential, webhook signature or card number may arrive; the environment,
the release and the Stripe event's tags must.
"""

from __future__ import annotations

import gzip
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sentry_sdk
from fastapi.testclient import TestClient

from api.app import create_app
from core import log_context
from core.settings import load_settings
from tasks.events import registry
from tasks.events.tasks import EVENT_TASKS
from tests.conftest import WEBHOOK_SECRET, make_client
from tests.support.events import encode, make_event, signed, store_directly, wait_for_status
from tests.support.processes import WorkerProcess
from tests.support.sensitive import BEARER, CARD, COOKIE, EMAIL, FORBIDDEN, SECRET_KEY, SIGNATURE
from tests.support.stripe_events import Ids, stripe_event


class EnvelopeServer:
    """`POST /api/<project>/envelope/`, as Sentry takes it; keeps every envelope it gets."""

    def __init__(self) -> None:
        received: list[bytes] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "br":
                    import brotli

                    body = brotli.decompress(body)
                if self.path.startswith("/api/") and self.path.endswith("/envelope/"):
                    received.append(body)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the test reads what arrived, not the access log

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self.dsn = f"http://publickey@127.0.0.1:{self._server.server_address[1]}/1"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def events(self) -> list[tuple[dict[str, Any], bytes]]:
        """Each error event that arrived, with the raw (decompressed) envelope it came in."""
        found = []
        for raw in list(self.received):
            for item_header, payload in _items(raw):
                if item_header.get("type") == "event":
                    found.append((json.loads(payload), raw))
        return found

    def wait_for_event(
        self, matches: Callable[[dict[str, Any]], bool], timeout: float = 20.0
    ) -> tuple[dict[str, Any], bytes]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event, raw in self.events():
                if matches(event):
                    return event, raw
            time.sleep(0.05)
        raise AssertionError(f"no such event arrived; got {[e for e, _ in self.events()]}")


def _items(envelope: bytes) -> Iterator[tuple[dict[str, Any], bytes]]:
    """An envelope's items: a header line, then items of a header line and a payload
    (of the header's `length`, or up to the end of the line)."""
    _, _, rest = envelope.partition(b"\n")
    while rest.strip():
        header_line, _, rest = rest.partition(b"\n")
        header = json.loads(header_line)
        if "length" in header:
            payload, rest = rest[: header["length"]], rest[header["length"] + 1 :]
        else:
            payload, _, rest = rest.partition(b"\n")
        yield header, payload


def _tags(event: dict[str, Any]) -> dict[str, str]:
    tags = event.get("tags") or {}
    # The SDK sends tags as a mapping; older protocol versions as pairs.
    return dict(tags) if isinstance(tags, dict) else {k: v for k, v in tags}


def assert_clean(raw: bytes) -> None:
    text = raw.decode()
    for forbidden in FORBIDDEN:
        assert forbidden not in text, f"{forbidden!r} reached Sentry"


@pytest.fixture
def envelopes() -> Iterator[EnvelopeServer]:
    server = EnvelopeServer()
    yield server
    # This process's Sentry off again, and the process-wide tag gone with it.
    sentry_sdk.flush(timeout=2)
    sentry_sdk.init(dsn=None)
    sentry_sdk.get_global_scope().remove_tag("component")
    server.close()


# --- The API ---------------------------------------------------------------------------


def test_an_api_error_arrives_without_credentials_addresses_or_cards(envelopes):
    settings = load_settings(sentry_dsn=envelopes.dsn, release="billing@test-1")
    app = create_app(settings)

    @app.get("/test-only/boom")
    async def boom() -> None:
        raise RuntimeError(f"charge of {EMAIL} on card {CARD} with key {SECRET_KEY} refused")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get(
            f"/test-only/boom?customer={EMAIL}&api_key={SECRET_KEY}",
            headers={
                "Authorization": f"Bearer {BEARER}",
                "Stripe-Signature": f"t={int(time.time())},v1={SIGNATURE}",
                "Cookie": f"session={COOKIE}",
                "X-Customer-Email": EMAIL,
            },
        )
    assert response.status_code == 500

    event, raw = envelopes.wait_for_event(lambda e: "exception" in e)

    assert_clean(raw)
    assert event["environment"] == "test"
    assert event["release"] == "billing@test-1"
    assert _tags(event)["component"] == "api"
    # Still useful to a reader: redacted in place, not dropped.
    value = event["exception"]["values"][-1]["value"]
    assert "j***@example.com" in value and "[card]" in value and "sk_live_[Filtered]" in value
    # The request was attached, with its credentials filtered out.
    headers = {k.lower(): v for k, v in event["request"]["headers"].items()}
    assert headers["authorization"] == "[Filtered]"
    assert headers["stripe-signature"] == "[Filtered]"
    assert headers["x-customer-email"] == "j***@example.com"


def test_a_webhook_that_cannot_be_stored_is_reported_with_its_event(envelopes):
    # No database behind the API: storing fails, the delivery gets its 503.
    settings = load_settings(
        sentry_dsn=envelopes.dsn,
        database_url="postgresql+psycopg://postgres@127.0.0.1:1/nowhere",
    )
    event = make_event("invoice.paid")
    body = encode(event)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        response = client.post(
            "/api/stripe/webhook", content=body, headers=signed(body, WEBHOOK_SECRET)
        )
    assert response.status_code == 503

    report, raw = envelopes.wait_for_event(lambda e: _tags(e).get("stripe_event_id") == event["id"])

    assert _tags(report)["stripe_event_type"] == "invoice.paid"
    assert report["level"] == "warning"
    assert report["exception"]["values"][-1]["type"] == "StorageUnavailable"
    assert_clean(raw)


def test_an_error_escaping_the_webhook_is_reported_and_answered_500(envelopes, monkeypatch):
    # The webhook is answered before Sentry's ASGI middleware (api.hot_path): what escapes
    # its endpoint must still arrive, named by its route and scrubbed.
    from api.routes import webhooks

    def broken(body: bytes, *, live: bool) -> None:
        raise RuntimeError(f"parsing for {EMAIL} broke")

    monkeypatch.setattr(webhooks, "_parse_event", broken)
    settings = load_settings(sentry_dsn=envelopes.dsn)
    body = encode(make_event("invoice.paid"))
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        response = client.post(
            "/api/stripe/webhook", content=body, headers=signed(body, WEBHOOK_SECRET)
        )
    assert (response.status_code, response.json()) == (500, {"detail": "Internal Server Error"})

    event, raw = envelopes.wait_for_event(
        lambda e: (
            e.get("exception", {}).get("values", [{}])[-1].get("type") == "RuntimeError"
            and e.get("transaction") == "/api/stripe/webhook"
        )
    )

    assert _tags(event)["component"] == "api"
    assert "j***@example.com" in event["exception"]["values"][-1]["value"]
    assert_clean(raw)


# --- The worker ------------------------------------------------------------------------


@pytest.fixture
def sentry_worker(envelopes) -> Iterator[tuple[WorkerProcess, str]]:
    """A worker of its own, reporting to the envelope server, on queues of its own."""
    prefix = f"{os.environ['BROKER_KEY_PREFIX']}sentry-worker:"
    worker = WorkerProcess(
        env={"SENTRY_DSN": envelopes.dsn, "BROKER_KEY_PREFIX": prefix, "RELEASE": ""}
    )
    worker.start()
    yield worker, prefix
    worker.kill()  # nothing of it is needed any more: no warm shutdown to wait for


def test_a_failed_event_in_the_worker_arrives_with_its_tags_and_without_personal_data(
    envelopes, sentry_worker
):
    worker, prefix = sentry_worker
    # A Checkout naming a credit pack that does not exist fails for good, and its error
    # repeats the pack id: here an address and a card number. The customer's own email is
    # in the payload too.
    ids = Ids(pack=f"{EMAIL} {CARD}", email=EMAIL)
    event = stripe_event("checkout.session.completed", ids, variant="payment")
    body = encode(event)
    # The API stays up until the worker has the event: closing it at once could cancel the
    # dispatcher's publish, leaving the row to a sweep that this test does not run.
    with make_client(broker_key_prefix=prefix) as client:
        response = client.post(
            "/api/stripe/webhook", content=body, headers=signed(body, WEBHOOK_SECRET)
        )
        assert response.status_code == 200
        assert wait_for_status(event["id"]).status == "failed"

    report, raw = envelopes.wait_for_event(lambda e: _tags(e).get("stripe_event_id") == event["id"])

    tags = _tags(report)
    assert tags["stripe_event_type"] == "checkout.session.completed"
    assert tags["component"] == "worker"
    assert report["environment"] == "test"
    assert report["release"].startswith("stripe-billing-platform@")
    value = report["exception"]["values"][-1]["value"]
    assert "names no known credit pack" in value and "j***@example.com [card]" in value
    assert_clean(raw)
    # The worker's failure line went out as a breadcrumb only (scrubbed), not as an event
    # of its own: the exception is the one report.
    worker.wait_for_log("raised unexpected")
    reports = [e for e, _ in envelopes.events() if _tags(e).get("stripe_event_id") == event["id"]]
    assert len(reports) == 1


# --- In this process: the scope of a task --------------------------------------------


def test_an_events_tags_end_with_its_task(sentry_events, monkeypatch):
    def handler(session, ctx, event):
        raise ValueError("no plan for this price")

    monkeypatch.setitem(registry.HANDLERS, "invoice.paid", handler)
    event = make_event("invoice.paid")

    EVENT_TASKS["invoice.paid"].apply(args=[store_directly(event)])
    sentry_sdk.capture_message("after the task")

    failure, after = sentry_events
    assert failure["tags"]["stripe_event_id"] == event["id"]
    assert "stripe_event_id" not in after.get("tags", {})
    assert "stripe_event_type" not in after.get("tags", {})
    assert log_context.current() == {}
