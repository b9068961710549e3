"""The localstripe fake starts, answers the Stripe client, and signs webhooks Stripe's way."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import stripe

from tests.support.localstripe import LocalStripe

SECRET = "whsec_localstripe_smoke"


@pytest.fixture(scope="module")
def localstripe() -> Iterator[LocalStripe]:
    with LocalStripe() as fake:
        yield fake


def _recording_server() -> tuple[HTTPServer, list[tuple[str, bytes]]]:
    """A local HTTP server that keeps every POST's Stripe-Signature header and body."""
    deliveries: list[tuple[str, bytes]] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            deliveries.append((self.headers["Stripe-Signature"], body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, deliveries


def test_customer_round_trip(localstripe: LocalStripe) -> None:
    client = localstripe.client()
    created = client.v1.customers.create(
        params={"email": "smoke@example.com", "metadata": {"user_id": "u-1"}}
    )
    fetched = client.v1.customers.retrieve(created.id)
    assert fetched.id.startswith("cus_")
    assert fetched.email == "smoke@example.com"
    assert fetched.metadata["user_id"] == "u-1"


def test_subscribe_renew_cancel_sends_verifiable_webhooks(localstripe: LocalStripe) -> None:
    server, deliveries = _recording_server()
    try:
        events = ["invoice.payment_succeeded", "customer.subscription.deleted"]
        localstripe.register_webhook(f"http://127.0.0.1:{server.server_port}/hook", SECRET, events)
        plan_id = localstripe.create_plan(amount=1500)
        customer_id = localstripe.create_customer(email="sub@example.com")
        subscription = localstripe.subscribe(customer_id, plan_id)
        assert subscription.status == "active"
        assert localstripe.renew(subscription.id).status == "paid"
        assert localstripe.cancel(subscription.id).status == "canceled"

        deadline = time.monotonic() + 10
        while len(deliveries) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        server.shutdown()

    types = []
    for header, body in deliveries:
        stripe.WebhookSignature.verify_header(body.decode(), header, SECRET, tolerance=300)
        event = json.loads(body)
        obj = event["data"]["object"]
        if obj.get("customer") != customer_id:
            continue
        types.append(event["type"])
        if event["type"] == "invoice.payment_succeeded":
            assert obj["subscription"] == subscription.id
            assert obj["lines"]["data"][0]["plan"]["id"] == plan_id
            assert obj["amount_paid"] == 1500
    assert sorted(types) == [
        "customer.subscription.deleted",
        "invoice.payment_succeeded",
        "invoice.payment_succeeded",
    ]
