"""`POST /api/billing/checkout`: the user's customer found or made, a Checkout Session for a
plan or a credit pack, idempotency keys on every Stripe call. Stripe is the test's own fake
over HTTP (localstripe has no Checkout); the real `stripe` client talks to it."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from db.accounts import account_of_user, ensure_account, update_contact
from db.models import CheckoutContext
from db.session import transaction
from tests.billing_api.conftest import auth, subscriber
from tests.conftest import make_client
from tests.support.stripe_events import Ids
from tests.support.stripe_fake import TEST_KEY

CHECKOUT = "/v1/checkout/sessions"


def test_a_plan_checkout_creates_the_customer_and_a_subscription_session(api, fake):
    ids = Ids()

    answer = api.post(
        "/api/billing/checkout", json={"plan": "pro"}, headers=auth(ids.user_id, ids.email)
    )

    assert answer.status_code == 200, answer.text
    body = answer.json()
    session = fake.checkout_sessions[body["session_id"]]
    assert body["url"] == session["url"]
    [created] = fake.forms("POST", "/v1/customers")
    assert created["metadata[user_id]"] == ids.user_id
    assert created["email"] == ids.email
    [form] = fake.forms("POST", CHECKOUT)
    assert form["mode"] == "subscription"
    assert form["line_items[0][price]"] == "price_pro_test"
    assert form["client_reference_id"] == ids.user_id
    assert form["customer"] == session["customer"]
    assert form["success_url"].startswith("https://app.example.com/billing?checkout=success")
    assert "{CHECKOUT_SESSION_ID}" in form["success_url"]
    assert form["metadata[plan]"] == "pro"
    assert all(fake.idempotency_keys(CHECKOUT))
    with transaction() as db:
        account = account_of_user(db, user_id=ids.user_id)
        assert account.stripe_customer_id == session["customer"]
        assert account.email == ids.email


def test_a_pack_checkout_is_a_one_time_payment_named_by_the_pack(api, fake):
    ids = Ids()

    answer = api.post("/api/billing/checkout", json={"pack": "small"}, headers=auth(ids.user_id))

    assert answer.status_code == 200, answer.text
    [form] = fake.forms("POST", CHECKOUT)
    assert form["mode"] == "payment"
    assert form["line_items[0][price_data][unit_amount]"] == "900"
    assert form["line_items[0][price_data][currency]"] == "usd"
    assert form["metadata[pack]"] == "small"
    assert form["payment_intent_data[metadata][pack]"] == "small"


def test_a_double_click_opens_one_session(api, fake):
    headers = auth(Ids().user_id)

    first = api.post("/api/billing/checkout", json={"plan": "pro"}, headers=headers)
    second = api.post("/api/billing/checkout", json={"plan": "pro"}, headers=headers)

    assert first.json()["session_id"] == second.json()["session_id"]
    keys = fake.idempotency_keys(CHECKOUT)
    assert len(keys) == 2 and keys[0] == keys[1]
    assert len(fake.checkout_sessions) == 1
    assert len(fake.forms("POST", "/v1/customers")) == 1


def test_the_request_idempotency_key_is_used(api, fake):
    headers = auth(Ids().user_id)

    first = api.post(
        "/api/billing/checkout", json={"pack": "small"}, headers={**headers, "Idempotency-Key": "a"}
    )
    again = api.post(
        "/api/billing/checkout", json={"pack": "small"}, headers={**headers, "Idempotency-Key": "a"}
    )
    other = api.post(
        "/api/billing/checkout", json={"pack": "small"}, headers={**headers, "Idempotency-Key": "b"}
    )

    assert first.json() == again.json()
    assert other.json()["session_id"] != first.json()["session_id"]
    first_key, again_key, other_key = fake.idempotency_keys(CHECKOUT)
    assert first_key == again_key != other_key


def test_the_same_key_for_another_pack_is_409(api, fake):
    headers = {**auth(Ids().user_id), "Idempotency-Key": "k-1"}

    api.post("/api/billing/checkout", json={"pack": "small"}, headers=headers)
    answer = api.post("/api/billing/checkout", json={"pack": "large"}, headers=headers)

    assert answer.status_code == 409
    assert "Idempotency-Key" in answer.json()["detail"]


def test_an_existing_customer_is_checked_with_stripe_and_reused(api, fake):
    sub = subscriber(fake)
    fake.customers[sub.ids.customer]["email"] = "new-address@example.com"  # changed in Stripe

    answer = api.post("/api/billing/checkout", json={"pack": "large"}, headers=sub.headers)

    assert answer.status_code == 200
    assert ("GET", f"/v1/customers/{sub.ids.customer}") in [(m, p) for m, p, _ in fake.requests]
    assert fake.forms("POST", "/v1/customers") == []
    assert fake.forms("POST", CHECKOUT)[0]["customer"] == sub.ids.customer
    with transaction() as db:
        assert account_of_user(db, user_id=sub.ids.user_id).email == "new-address@example.com"


def test_a_customer_deleted_in_stripe_is_replaced(api, fake):
    ids = Ids()
    fake.add_customer(ids.customer, user_id=ids.user_id, deleted=True)
    with transaction() as db:
        account, _ = ensure_account(db, customer_id=ids.customer)
        update_contact(db, account, email=None, user_id=ids.user_id, as_of=None)

    answer = api.post("/api/billing/checkout", json={"pack": "small"}, headers=auth(ids.user_id))

    assert answer.status_code == 200
    [created] = fake.forms("POST", "/v1/customers")
    assert created["metadata[user_id]"] == ids.user_id
    with transaction() as db:
        replacement = account_of_user(db, user_id=ids.user_id)
        assert replacement.stripe_customer_id != ids.customer
    assert fake.forms("POST", CHECKOUT)[0]["customer"] == replacement.stripe_customer_id


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({"plan": "platinum"}, 400, "Unknown plan 'platinum'"),
        ({"plan": "free"}, 400, "Unknown plan 'free'"),
        ({"pack": "huge"}, 400, "Unknown credit pack 'huge'"),
        ({"plan": "pro", "pack": "small"}, 422, "exactly one of plan or pack"),
        ({}, 422, "exactly one of plan or pack"),
        ({"plan": "pro", "coupon": "FREE"}, 422, "coupon"),
    ],
)
def test_bad_requests_get_a_reason_and_never_reach_stripe(api, fake, body, status, reason):
    answer = api.post("/api/billing/checkout", json=body, headers=auth(Ids().user_id))

    assert answer.status_code == status
    assert reason in answer.json()["detail"]
    assert fake.requests == []


def test_a_subscriber_cannot_buy_a_second_subscription(api, fake):
    sub = subscriber(fake)

    answer = api.post("/api/billing/checkout", json={"plan": "team"}, headers=sub.headers)

    assert answer.status_code == 409
    assert "/api/billing/subscription/change" in answer.json()["detail"]
    assert fake.requests == []


def test_without_a_stripe_key_checkout_is_503_naming_the_variable():
    with make_client(stripe_secret_key_test="") as client:
        answer = client.post("/api/billing/checkout", json={"plan": "pro"}, headers=auth("u1"))

    assert answer.status_code == 503
    assert "STRIPE_SECRET_KEY_TEST" in answer.json()["detail"]


def test_a_plan_without_a_price_is_503_naming_the_variable(fake):
    with make_client(
        stripe_api_base=fake.url, stripe_secret_key_test=TEST_KEY, stripe_price_team_test=""
    ) as client:
        answer = client.post("/api/billing/checkout", json={"plan": "team"}, headers=auth("u2"))

    assert answer.status_code == 503
    assert "STRIPE_PRICE_TEAM_TEST" in answer.json()["detail"]


def test_the_buyers_ip_and_device_are_kept_with_the_session(fake):
    ids = Ids()
    with make_client(
        stripe_api_base=fake.url, stripe_secret_key_test=TEST_KEY, trusted_proxy_hops=1
    ) as client:
        answer = client.post(
            "/api/billing/checkout",
            json={"pack": "small"},
            headers={
                **auth(ids.user_id),
                "X-Forwarded-For": "198.51.100.1, 203.0.113.9",
                "X-Device-Fingerprint": "dfp_0123456789abcdef0123",
            },
        )

    assert answer.status_code == 200, answer.text
    with transaction() as session:
        kept = session.scalar(
            select(CheckoutContext).where(
                CheckoutContext.checkout_session_id == answer.json()["session_id"]
            )
        )
        assert kept is not None
        assert (kept.user_id, kept.ip_address, kept.device_fingerprint) == (
            ids.user_id,
            "203.0.113.9",
            "dfp_0123456789abcdef0123",
        )


@pytest.mark.parametrize("device", ["x" * 501, "tab\tinside"])
def test_a_bad_device_fingerprint_is_400_before_stripe(api, fake, device):
    answer = api.post(
        "/api/billing/checkout",
        json={"pack": "small"},
        headers={**auth(Ids().user_id), "X-Device-Fingerprint": device},
    )

    assert answer.status_code == 400
    assert "X-Device-Fingerprint" in answer.json()["detail"]
    assert fake.requests == []
