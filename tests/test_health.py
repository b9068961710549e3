"""Liveness, readiness and the Stripe health check."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import make_client
from tests.support.stripe_fake import TEST_KEY, StripeFake

ACCOUNT = ("GET", "/v1/account")


class SlowStripeFake(StripeFake):
    """The Stripe fake, taking its time over the account: long enough for requests to pile
    up behind one check."""

    def _serve(
        self, method: str, path: str, form: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        if (method, path) == ACCOUNT:
            time.sleep(0.5)
        return super()._serve(method, path, form, headers)


@pytest.fixture
def fake() -> Iterator[StripeFake]:
    with StripeFake().running() as running:
        yield running


def _stripe_app(fake: StripeFake, **overrides: object) -> TestClient:
    return make_client(stripe_secret_key_test=TEST_KEY, stripe_api_base=fake.url, **overrides)


def _account_requests(fake: StripeFake) -> int:
    return sum(1 for method, path, _ in fake.requests if (method, path) == ACCOUNT)


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


def test_readyz_asks_a_rabbitmq_broker(_rabbitmq_vhost):
    with make_client(broker_url=_rabbitmq_vhost) as on_rabbitmq:
        assert on_rabbitmq.get("/readyz").json()["broker"] is True
    with make_client(broker_url="amqp://guest:guest@127.0.0.1:1//") as no_broker:
        response = no_broker.get("/readyz")
    assert response.status_code == 503
    assert response.json()["broker"] is False


def test_readyz_is_503_without_the_database():
    with make_client(database_url="postgresql+psycopg://postgres@127.0.0.1:1/x") as no_db:
        response = no_db.get("/readyz")
    assert response.status_code == 503
    assert response.json()["database"] is False


@pytest.mark.parametrize("path", ["/api/stripe/health", "/api/billing/health"])
def test_stripe_health_reports_the_account_and_never_the_key(fake, path):
    with _stripe_app(fake) as app:
        response = app.get(path)
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "connected": True,
        "account_id": "acct_fake",
        "livemode": False,
        "test_mode": True,
        "webhook_configured": True,
    }
    assert TEST_KEY not in response.text


def test_stripe_health_with_a_rejected_key_is_an_error_not_a_500(fake):
    fake.fail_path["/v1/account"] = [
        (401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key"}})
    ]
    with _stripe_app(fake) as app:
        response = app.get("/api/stripe/health")
    assert response.status_code == 503
    assert response.json() == {
        "status": "error",
        "detail": "Stripe rejected the configured secret key.",
        "connected": False,
    }
    assert TEST_KEY not in response.text


def test_stripe_health_asks_stripe_once_per_window(fake):
    with _stripe_app(fake) as app:
        answers = [app.get(path) for path in ["/api/stripe/health", "/api/billing/health"] * 5]

    assert [a.status_code for a in answers] == [200] * 10
    assert all(a.json()["account_id"] == "acct_fake" for a in answers)
    assert _account_requests(fake) == 1


def test_concurrent_health_requests_share_one_stripe_call():
    with (
        SlowStripeFake().running() as slow,
        _stripe_app(slow) as app,
        ThreadPoolExecutor(max_workers=12) as pool,
    ):
        answers = list(pool.map(lambda _: app.get("/api/stripe/health"), range(12)))

    assert [a.status_code for a in answers] == [200] * 12
    assert _account_requests(slow) == 1


def test_a_failed_check_is_reported_unretried_and_kept_for_the_window(fake):
    fake.fail_path["/v1/account"] = [
        (500, {"error": {"type": "api_error", "message": "Something went wrong"}})
    ]  # once: a retry, or the next request, would get the account
    with _stripe_app(fake) as app:
        answers = [app.get("/api/stripe/health") for _ in range(4)]

    assert [a.status_code for a in answers] == [503] * 4
    assert answers[-1].json() == {
        "status": "error",
        "detail": "Stripe answered with an error (HTTP 500).",
        "connected": False,
    }
    assert _account_requests(fake) == 1


def test_without_a_window_stripe_is_asked_every_time(fake):
    with _stripe_app(fake, health_cache_seconds=0) as app:
        answers = [app.get("/api/stripe/health") for _ in range(3)]

    assert [a.status_code for a in answers] == [200] * 3
    assert _account_requests(fake) == 3


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
