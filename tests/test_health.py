"""Liveness, readiness and the Stripe health check."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import make_client

GOOD_KEY = "sk_test_health_good"


class StripeAccountStandIn(BaseHTTPRequestHandler):
    """Answers `GET /v1/account` as Stripe does (the Stripe fake has no account endpoint)."""

    def do_GET(self) -> None:
        if self.path != "/v1/account":
            self._send(404, {"error": {"type": "invalid_request_error", "message": "no route"}})
        elif self.headers.get("Authorization") != f"Bearer {GOOD_KEY}":
            self._send(401, {"error": {"type": "invalid_request_error", "message": "bad key"}})
        else:
            self._send(200, {"id": "acct_TestHealth01", "object": "account"})

    def _send(self, status: int, body: dict) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def stripe_base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), StripeAccountStandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_healthz_answers_while_alive(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_is_ok_with_database_and_broker(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": True, "broker": True}


def test_readyz_is_503_without_the_broker():
    with make_client(redis_url="redis://127.0.0.1:1/0") as no_broker:
        response = no_broker.get("/readyz")
    assert response.status_code == 503
    assert response.json()["broker"] is False
    assert response.json()["database"] is True


def test_readyz_is_503_without_the_database():
    with make_client(database_url="postgresql+psycopg://postgres@127.0.0.1:1/x") as no_db:
        response = no_db.get("/readyz")
    assert response.status_code == 503
    assert response.json()["database"] is False


@pytest.mark.parametrize("path", ["/api/stripe/health", "/api/billing/health"])
def test_stripe_health_reports_the_account_and_never_the_key(stripe_base, path):
    with make_client(stripe_secret_key_test=GOOD_KEY, stripe_api_base=stripe_base) as app:
        response = app.get(path)
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "connected": True,
        "account_id": "acct_TestHealth01",
        "livemode": False,
        "test_mode": True,
        "webhook_configured": True,
    }
    assert GOOD_KEY not in response.text


def test_stripe_health_with_a_rejected_key_is_an_error_not_a_500(stripe_base):
    key = "sk_test_health_wrong"
    with make_client(stripe_secret_key_test=key, stripe_api_base=stripe_base) as app:
        response = app.get("/api/stripe/health")
    assert response.status_code == 503
    assert response.json() == {
        "status": "error",
        "detail": "Stripe rejected the configured secret key.",
        "connected": False,
    }
    assert key not in response.text


def test_stripe_health_when_stripe_is_unreachable():
    unreachable = "http://127.0.0.1:1"
    with make_client(stripe_secret_key_test="sk_test_x", stripe_api_base=unreachable) as app:
        response = app.get("/api/stripe/health")
    assert response.status_code == 503
    assert response.json()["connected"] is False


def test_stripe_health_without_a_key_says_so(client):
    response = client.get("/api/stripe/health")
    assert response.status_code == 503
    assert response.json()["status"] == "error"
    assert "not configured" in response.json()["detail"]
