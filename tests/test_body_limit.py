"""Every route but the webhook refuses a body over 64 KiB with 413, before auth and parsing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.conftest import WEBHOOK_SECRET
from tests.support.events import encode, make_event, signed, stored

LIMIT = 64 * 1024
ROUTES = [
    # (method, path): an admin route and user routes, called without credentials, so that a
    # 401 would show that auth ran before the body was judged.
    ("POST", "/api/admin/webhook-events/evt_body_limit/replay"),
    ("POST", "/api/admin/reconcile"),
    ("POST", "/api/billing/checkout"),
    ("GET", "/api/billing/info"),
]


def _chunks(total: int, size: int = 8192) -> Iterator[bytes]:
    while total > 0:
        yield b"x" * min(size, total)
        total -= size


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_a_declared_body_over_64_kib_is_413_before_auth(client, method, path):
    answer = client.request(
        method,
        path,
        content=b"{" + b" " * LIMIT + b"}",
        headers={"Content-Type": "application/json"},
    )

    assert answer.status_code == 413, answer.text
    assert answer.json() == {"detail": "The request body is over 64 KiB."}


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_a_chunked_body_over_64_kib_is_413_before_auth(client, method, path):
    answer = client.request(method, path, content=_chunks(LIMIT + 1))

    assert answer.request.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in answer.request.headers
    assert answer.status_code == 413, answer.text


def test_a_body_within_the_limit_still_reaches_auth(client):
    answer = client.post("/api/billing/checkout", json={"plan": "pro", "pad": "x" * 60_000})

    assert answer.status_code == 401


def test_a_false_content_length_does_not_let_a_longer_body_in(client):
    async def lying_request() -> httpx.Response:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            request = http.build_request(
                "POST", "/api/billing/checkout", content=_stream(LIMIT * 2, counter=[])
            )
            request.headers["Content-Length"] = "10"
            return await http.send(request)

    assert asyncio.run(lying_request()).status_code == 413


async def _stream(total: int, counter: list[int], size: int = 4096) -> AsyncIterator[bytes]:
    while total > 0:
        counter.append(size)
        yield b"x" * size
        total -= size


def test_a_long_stream_is_refused_without_reading_past_the_limit(client):
    pulled: list[int] = []

    async def long_upload() -> httpx.Response:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return await http.post("/api/billing/checkout", content=_stream(64 * LIMIT, pulled))

    answer = asyncio.run(long_upload())

    assert answer.status_code == 413
    assert answer.headers["Connection"] == "close"
    assert LIMIT < sum(pulled) <= LIMIT + 4096


def test_the_webhook_keeps_its_own_mebibyte_cap(client):
    event = make_event("test.body_limit_unhandled", padding="x" * (512 * 1024))
    body = encode(event)
    accepted = client.post(
        "/api/stripe/webhook", content=body, headers=signed(body, WEBHOOK_SECRET)
    )
    too_big = b"x" * (1024 * 1024 + 1)
    refused = client.post(
        "/api/billing/webhook", content=too_big, headers=signed(too_big, WEBHOOK_SECRET)
    )

    assert accepted.status_code == 200, accepted.text
    assert stored(event["id"]) is not None
    assert refused.status_code == 413
    assert refused.json()["detail"] == "Body is over 1048576 bytes."
