"""Stripe's errors, as the host application sees them: a card error is 402, an invalid request
400 with Stripe's message, a rate limit or a lost connection 503 with `Retry-After`, and no
key or card number ever in an answer or a log line."""

from __future__ import annotations

import logging

import pytest

from tests.billing_api.conftest import auth
from tests.conftest import make_client
from tests.support.processes import free_port
from tests.support.stripe_events import Ids
from tests.support.stripe_fake import TEST_KEY


def error(kind: str, message: str, code: str | None = None, **extra: str) -> dict:
    return {"error": {"type": kind, "message": message, "code": code, **extra}}


CASES = {
    "card declined": (
        402,
        error("card_error", "Your card was declined.", "card_declined", decline_code="generic"),
        402,
        "Your card was declined.",
    ),
    "invalid request": (
        400,
        error("invalid_request_error", "No such price: 'price_pro_test'", "resource_missing"),
        400,
        "No such price: 'price_pro_test'",
    ),
    "not found": (
        404,
        error("invalid_request_error", "No such customer: 'cus_gone'", "resource_missing"),
        400,
        "No such customer: 'cus_gone'",
    ),
    "rate limited": (
        429,
        error("invalid_request_error", "Too many requests.", "rate_limit"),
        503,
        "rate limiting",
    ),
    "key refused": (
        401,
        error("invalid_request_error", "Invalid API Key provided: sk_test_********abcd"),
        503,
        "refused the platform's API key",
    ),
    "key not permitted": (
        403,
        error("invalid_request_error", "The provided key 'rk_test_****abcd' does not have access."),
        503,
        "refused the platform's API key",
    ),
    "stripe failed": (
        500,
        error("api_error", "An unknown error occurred."),
        503,
        "failed to answer",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_each_kind_of_stripe_error_has_its_answer(api, fake, caplog, case):
    stripe_status, body, status, reason = CASES[case]
    # The customer is made; the Checkout call fails (every try: a 5xx is retried).
    fake.fail_path["/v1/checkout/sessions"] = [(stripe_status, body)] * 3

    with caplog.at_level(logging.INFO):
        answer = api.post(
            "/api/billing/checkout", json={"pack": "small"}, headers=auth(Ids().user_id)
        )

    assert answer.status_code == status, answer.text
    assert reason in answer.json()["detail"]
    if status == 503 and stripe_status not in (401, 403):
        assert int(answer.headers["Retry-After"]) > 0
    assert fake.forms("POST", "/v1/customers")  # the error came from the Checkout call
    assert "sk_test" not in answer.text and "rk_test" not in answer.text
    assert TEST_KEY not in caplog.text and "_test_****" not in caplog.text


def test_an_unreachable_stripe_is_503_with_retry_after():
    with make_client(
        stripe_api_base=f"http://127.0.0.1:{free_port()}", stripe_secret_key_test=TEST_KEY
    ) as client:
        answer = client.post("/api/billing/checkout", json={"pack": "small"}, headers=auth("u"))

    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "5"
    assert "could not be reached" in answer.json()["detail"]


def test_a_card_number_or_key_in_stripe_s_message_is_redacted(api, fake):
    fake.fail_path["/v1/checkout/sessions"] = [
        (
            400,
            error(
                "invalid_request_error",
                "Invalid card number 4242 4242 4242 4242 for key sk_test_51Habcdef",
            ),
        )
    ]

    answer = api.post("/api/billing/checkout", json={"pack": "small"}, headers=auth(Ids().user_id))

    assert answer.status_code == 400
    assert answer.json()["detail"] == "Invalid card number [card] for key [key]"


def test_a_failed_checkout_keeps_the_customer_stripe_made(api, fake):
    ids = Ids()
    fake.fail_path["/v1/checkout/sessions"] = [
        (402, error("card_error", "Your card was declined.", "card_declined"))
    ]

    declined = api.post("/api/billing/checkout", json={"pack": "small"}, headers=auth(ids.user_id))
    again = api.post("/api/billing/checkout", json={"pack": "small"}, headers=auth(ids.user_id))

    assert (declined.status_code, again.status_code) == (402, 200)
    [created] = fake.forms("POST", "/v1/customers")
    assert created["metadata[user_id]"] == ids.user_id
    # The second request found the customer the first one made, and checked it with Stripe.
    customer = fake.forms("POST", "/v1/checkout/sessions")[-1]["customer"]
    assert ("GET", f"/v1/customers/{customer}") in [(m, p) for m, p, _ in fake.requests]
