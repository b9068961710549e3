"""`POST /api/stripe/webhook`: every documented answer (docs/api.md), against the real
database."""

from __future__ import annotations

import time

import pytest

from tests.conftest import ROTATED_SECRET, WEBHOOK_SECRET, make_client
from tests.support.events import count_rows, encode, make_event, signed, stored

WEBHOOK = "/api/stripe/webhook"


def test_a_new_event_is_stored_and_acknowledged(client):
    event = make_event("invoice.paid")
    body = encode(event)

    response = client.post(WEBHOOK, content=body, headers=signed(body, WEBHOOK_SECRET))

    assert response.status_code == 200
    assert response.json() == {"received": True, "duplicate": False, "event_id": event["id"]}
    row = stored(event["id"])
    assert row.type == "invoice.paid"
    assert row.api_version == event["api_version"]
    assert row.livemode is False
    assert row.payload == event
    assert row.stripe_created.timestamp() == event["created"]
    assert row.status in ("received", "queued", "processing", "processed")


def test_a_second_delivery_is_a_duplicate_and_stores_nothing(client):
    body = encode(make_event("invoice.paid"))
    first = client.post(WEBHOOK, content=body, headers=signed(body, WEBHOOK_SECRET))
    again = client.post(WEBHOOK, content=body, headers=signed(body, WEBHOOK_SECRET))

    assert first.json()["duplicate"] is False
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert count_rows(first.json()["event_id"]) == 1


def test_the_alias_path_is_the_same_endpoint(client):
    event = make_event("invoice.paid")
    body = encode(event)
    response = client.post(
        "/api/billing/webhook", content=body, headers=signed(body, WEBHOOK_SECRET)
    )
    assert response.status_code == 200
    assert stored(event["id"]) is not None


def test_a_previous_secret_still_verifies_during_rotation(client):
    body = encode(make_event("invoice.paid"))
    response = client.post(WEBHOOK, content=body, headers=signed(body, ROTATED_SECRET))
    assert response.status_code == 200


def test_a_connect_event_keeps_its_account(client):
    event = make_event("invoice.paid", account="acct_TestConnected01", livemode=True)
    body = encode(event)
    client.post(WEBHOOK, content=body, headers=signed(body, WEBHOOK_SECRET))
    row = stored(event["id"])
    assert (row.account, row.livemode) == ("acct_TestConnected01", True)


def test_an_unhandled_type_is_stored_as_ignored(client):
    event = make_event("plan.created")
    body = encode(event)
    response = client.post(WEBHOOK, content=body, headers=signed(body, WEBHOOK_SECRET))
    assert response.status_code == 200
    row = stored(event["id"])
    assert row.status == "ignored"
    assert row.processed_at is not None


@pytest.mark.parametrize("header", [None, "", "   "])
def test_a_missing_or_empty_signature_header_is_400(client, header):
    event = make_event("invoice.paid")
    headers = {} if header is None else {"Stripe-Signature": header}
    response = client.post(WEBHOOK, content=encode(event), headers=headers)
    assert response.status_code == 400
    assert "Stripe-Signature" in response.json()["detail"]
    assert stored(event["id"]) is None


def test_a_wrong_signature_is_401(client):
    event = make_event("invoice.paid")
    body = encode(event)
    response = client.post(WEBHOOK, content=body, headers=signed(body, "whsec_not_ours"))
    assert response.status_code == 401
    assert stored(event["id"]) is None


def test_a_tampered_body_is_401(client):
    event = make_event("invoice.paid")
    body = encode(event)
    tampered = body.replace(b'"amount_paid": 2900', b'"amount_paid": 1')
    response = client.post(WEBHOOK, content=tampered, headers=signed(body, WEBHOOK_SECRET))
    assert response.status_code == 401


def test_a_malformed_signature_header_is_401(client):
    body = encode(make_event("invoice.paid"))
    response = client.post(WEBHOOK, content=body, headers={"Stripe-Signature": "garbage"})
    assert response.status_code == 401


def test_a_stale_timestamp_is_401_even_with_the_right_secret(client):
    event = make_event("invoice.paid")
    body = encode(event)
    ten_minutes_ago = int(time.time()) - 600
    response = client.post(
        WEBHOOK, content=body, headers=signed(body, WEBHOOK_SECRET, ten_minutes_ago)
    )
    assert response.status_code == 401
    assert stored(event["id"]) is None


def test_a_body_over_the_limit_is_413():
    event = make_event("invoice.paid", padding="x" * 2048)
    body = encode(event)
    with make_client(webhook_max_bytes=1024) as small_client:
        response = small_client.post(WEBHOOK, content=body, headers=signed(body, WEBHOOK_SECRET))
    assert response.status_code == 413
    assert stored(event["id"]) is None


def test_a_body_over_the_default_mebibyte_is_413(client):
    event = make_event("invoice.paid", padding="x" * (1024 * 1024))
    body = encode(event)
    response = client.post(WEBHOOK, content=body, headers=signed(body, WEBHOOK_SECRET))
    assert response.status_code == 413


def test_no_configured_secret_is_500():
    body = encode(make_event("invoice.paid"))
    with make_client(stripe_webhook_secret="") as unconfigured:
        response = unconfigured.post(WEBHOOK, content=body, headers=signed(body, WEBHOOK_SECRET))
    assert response.status_code == 500
    assert "STRIPE_WEBHOOK_SECRET" in response.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2, 3]",
        b'{"type": "invoice.paid", "data": {"object": {}}}',
        b'{"id": "evt_1", "data": {"object": {}}}',
        b'{"id": "evt_1", "type": "invoice.paid"}',
        b'{"id": 5, "type": "invoice.paid", "data": {"object": {}}}',
    ],
    ids=["not-json", "array", "no-id", "no-type", "no-data", "numeric-id"],
)
def test_a_verified_body_that_is_not_an_event_is_400(client, body):
    response = client.post(WEBHOOK, content=body, headers=signed(body, WEBHOOK_SECRET))
    assert response.status_code == 400
    assert response.json()["detail"]


def test_a_payload_postgres_cannot_store_is_400_and_does_not_fail_others(client):
    event = make_event("invoice.paid", note="nul \u0000 byte")
    body = encode(event)
    response = client.post(WEBHOOK, content=body, headers=signed(body, WEBHOOK_SECRET))
    assert response.status_code == 400
    assert "NUL" in response.json()["detail"]
    assert stored(event["id"]) is None


def test_an_escaped_backslash_before_u0000_is_no_nul_and_is_stored(client):
    event = make_event("invoice.paid", note="a \\u0000 b")  # a backslash, then "u0000"
    body = encode(event)
    assert b"\\u0000" in body
    response = client.post(WEBHOOK, content=body, headers=signed(body, WEBHOOK_SECRET))
    assert response.status_code == 200
    assert stored(event["id"]).payload == event


def test_the_database_refusing_connections_is_503_so_stripe_retries():
    event = make_event("invoice.paid")
    body = encode(event)
    refused = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"
    with make_client(database_url=refused) as no_database:
        started = time.monotonic()
        response = no_database.post(WEBHOOK, content=body, headers=signed(body, WEBHOOK_SECRET))
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert "again" in response.json()["detail"]
    assert elapsed < 10
    assert stored(event["id"]) is None
