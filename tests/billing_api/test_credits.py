"""`GET /api/billing/credits` and `POST /api/billing/credits/consume`: the balance and its
ledger, and spending exactly once per `Idempotency-Key`, never below zero, under
concurrency, over real HTTP to `billing api`."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from tests.billing_api.conftest import auth
from tests.support.stripe_events import (
    CREDITS,
    Ids,
    balance,
    emails,
    known_customer,
    ledger,
    process_ok,
    stripe_event,
)

CONSUME = "/api/billing/credits/consume"


def funded_user(plan_credits: bool = True) -> tuple[Ids, dict[str, str]]:
    """A `pro` customer whose first invoice granted its credits."""
    ids = known_customer(Ids())
    process_ok(stripe_event("customer.subscription.created", ids))
    if plan_credits:
        process_ok(stripe_event("invoice.paid", ids))
    return ids, auth(ids.user_id)


def spend(client, headers, amount, key, reason="image generation"):
    return client.post(
        CONSUME,
        json={"amount": amount, "reason": reason},
        headers={**headers, "Idempotency-Key": key},
    )


def test_a_spend_answers_the_entry_and_the_new_balance(client):
    ids, headers = funded_user()

    answer = spend(client, headers, 120, "req-1")

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["amount"] == 120
    assert body["reason"] == "image generation"
    assert body["credits_balance"] == CREDITS["pro"] - 120
    assert balance(ids.customer) == CREDITS["pro"] - 120


def test_the_same_key_returns_the_first_answer_and_spends_once(client):
    ids, headers = funded_user()

    first = spend(client, headers, 120, "req-1")
    again = spend(client, headers, 120, "req-1")

    assert again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert balance(ids.customer) == CREDITS["pro"] - 120


def test_the_same_key_with_another_body_is_409_and_spends_nothing(client):
    ids, headers = funded_user()
    spend(client, headers, 120, "req-1")

    answer = spend(client, headers, 999, "req-1")

    assert answer.status_code == 409
    assert "different request body" in answer.json()["detail"]
    assert balance(ids.customer) == CREDITS["pro"] - 120


def test_keys_belong_to_their_user(client):
    _, alice = funded_user()
    bob_ids, bob = funded_user()

    spend(client, alice, 10, "shared-key")
    answer = spend(client, bob, 10, "shared-key")

    assert answer.status_code == 200
    assert "Idempotent-Replayed" not in answer.headers
    assert balance(bob_ids.customer) == CREDITS["pro"] - 10


def test_a_short_balance_is_402_and_its_key_keeps_that_answer(client):
    ids, headers = funded_user()

    short = spend(client, headers, CREDITS["pro"] + 1, "too-much")
    process_ok(stripe_event("invoice.paid", ids.next_invoice()))  # more credits arrive
    again = spend(client, headers, CREDITS["pro"] + 1, "too-much")

    assert short.status_code == 402
    assert short.json() == {
        "detail": f"Not enough credits: the balance is {CREDITS['pro']}, "
        f"the request needs {CREDITS['pro'] + 1}."
    }
    assert (again.status_code, again.json()) == (402, short.json())
    assert balance(ids.customer) == 2 * CREDITS["pro"]


def test_a_user_without_an_account_has_nothing_to_spend(client):
    answer = spend(client, auth(Ids().user_id), 1, "k")

    assert answer.status_code == 402
    assert "the balance is 0" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("body", "headers", "status", "reason"),
    [
        ({"amount": 1}, {}, 400, "Idempotency-Key header is required"),
        ({"amount": 1}, {"Idempotency-Key": "x" * 256}, 400, "1 to 255"),
        ({"amount": 0}, {"Idempotency-Key": "k"}, 422, "amount"),
        ({"amount": -5}, {"Idempotency-Key": "k"}, 422, "amount"),
        ({"amount": "ten"}, {"Idempotency-Key": "k"}, 422, "amount"),
        ({"amount": 1, "extra": 1}, {"Idempotency-Key": "k"}, 422, "extra"),
        ({"amount": 1, "reason": "nul\x00byte"}, {"Idempotency-Key": "k"}, 422, "printable"),
    ],
)
def test_a_bad_consumption_is_refused_with_a_reason(client, body, headers, status, reason):
    ids, auth_headers = funded_user()

    answer = client.post(CONSUME, json=body, headers={**auth_headers, **headers})

    assert answer.status_code == status
    assert reason in answer.json()["detail"]
    assert balance(ids.customer) == CREDITS["pro"]


def test_falling_below_the_plan_threshold_emails_once_per_grant(client):
    ids, headers = funded_user()
    threshold = 500  # the shipped `pro` plan's credits_low_threshold

    def mine():
        return [e for e in emails("credits-low:") if ids.email in e.recipients]

    spend(client, headers, CREDITS["pro"] - threshold, "to-the-threshold")
    assert mine() == []  # at the threshold, not below it
    spend(client, headers, 1, "below")
    spend(client, headers, 1, "further-below")

    [email] = mine()
    assert email.template == "credits_low"
    assert email.context["credits_balance"] == threshold - 1
    assert email.context["upgrade_url"] == "https://app.example.com/billing"


@pytest.mark.parametrize("path", ["/api/billing/credits", "/api/billing/invoices"])
@pytest.mark.parametrize("cursor", ["9" * 30, "-1", "abc"])
def test_a_bad_cursor_is_422(client, path, cursor):
    _, headers = funded_user(plan_credits=False)

    answer = client.get(path, params={"cursor": cursor}, headers=headers)

    assert answer.status_code == 422
    assert "cursor" in answer.json()["detail"]


def test_the_ledger_is_listed_newest_first_in_pages(client):
    ids, headers = funded_user()
    for n in range(5):
        spend(client, headers, n + 1, f"page-{n}")

    first = client.get("/api/billing/credits", params={"limit": 4}, headers=headers).json()
    rest = client.get(
        "/api/billing/credits", params={"limit": 4, "cursor": first["next_cursor"]}, headers=headers
    ).json()

    assert first["credits_balance"] == CREDITS["pro"] - 15
    assert [e["amount"] for e in first["ledger"]] == [-5, -4, -3, -2]
    assert first["has_more"] is True
    assert [e["amount"] for e in rest["ledger"]] == [-1, CREDITS["pro"]]
    assert rest["has_more"] is False and rest["next_cursor"] is None
    assert rest["ledger"][-1]["kind"] == "plan_credits"
    assert len(ledger(ids.customer)) == 6


def _concurrently(url: str, requests: list[tuple[dict, dict]]) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            return await asyncio.gather(
                *(http.post(CONSUME, json=body, headers=headers) for body, headers in requests)
            )

    return asyncio.run(run())


def test_twenty_concurrent_retries_of_one_key_spend_once(api_server):
    ids, headers = funded_user()
    request = ({"amount": 7, "reason": "r"}, {**headers, "Idempotency-Key": "same"})

    answers = _concurrently(api_server.url, [request] * 20)

    assert [a.status_code for a in answers] == [200] * 20
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum("Idempotent-Replayed" not in a.headers for a in answers) == 1
    assert balance(ids.customer) == CREDITS["pro"] - 7


def test_twenty_concurrent_spends_never_overdraw(api_server):
    ids, headers = funded_user()
    # 5,000 credits: leave 30, then 20 requests of 10 each race for them.
    spend_all_but = ({"amount": CREDITS["pro"] - 30}, {**headers, "Idempotency-Key": "most"})
    assert _concurrently(api_server.url, [spend_all_but])[0].status_code == 200
    requests = [
        ({"amount": 10}, {**headers, "Idempotency-Key": f"race-{uuid.uuid4().hex}"})
        for _ in range(20)
    ]

    answers = _concurrently(api_server.url, requests)

    assert sorted(a.status_code for a in answers) == [200] * 3 + [402] * 17
    assert balance(ids.customer) == 0
