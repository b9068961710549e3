"""Customers, subscriptions and cancellation through localstripe, a real Stripe fake over
HTTP: the user's customer is made once with `metadata.user_id`, reused while Stripe has it,
replaced when Stripe deleted it; cancellation at period end and now."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from api.auth import User
from billing.customers import get_or_create_customer
from billing.subscriptions import apply_stripe_subscription
from db.accounts import account_of_user
from db.session import transaction
from db.subscriptions import Cause
from tests.billing_api.conftest import auth
from tests.conftest import make_client
from tests.support.localstripe import CARD_OK, TEST_KEY, LocalStripe
from tests.support.stripe_events import (
    PRICES,
    Ids,
    billing_context,
    emails,
    history,
    subscription,
    using_stripe,
)


@pytest.fixture(scope="module")
def localstripe() -> Iterator[LocalStripe]:
    with LocalStripe() as running:
        running.create_plan(PRICES["pro"], amount=2900)
        yield running


@pytest.fixture
def api(localstripe: LocalStripe):
    with make_client(stripe_api_base=localstripe.url, stripe_secret_key_test=TEST_KEY) as client:
        yield client


def customer_of(localstripe: LocalStripe, user: User) -> str:
    with using_stripe(localstripe.client()) as ctx, transaction() as db:
        account = get_or_create_customer(db, ctx, user_id=user.id, email=user.email)
        return account.stripe_customer_id


def test_the_user_s_customer_is_made_once_and_replaced_when_deleted(localstripe):
    ids = Ids()
    user = User(id=ids.user_id, email=ids.email)
    v1 = localstripe.client().v1

    first = customer_of(localstripe, user)
    again = customer_of(localstripe, user)

    assert again == first
    customer = v1.customers.retrieve(first)
    assert customer.metadata["user_id"] == ids.user_id
    assert customer.email == ids.email

    v1.customers.delete(first)
    replacement = customer_of(localstripe, user)

    assert replacement != first
    assert v1.customers.retrieve(replacement).metadata["user_id"] == ids.user_id
    with transaction() as db:
        assert account_of_user(db, user_id=ids.user_id).stripe_customer_id == replacement


def subscribed_user(localstripe: LocalStripe) -> tuple[str, dict[str, str]]:
    """A user with a `pro` subscription in localstripe, stored as Stripe returned it."""
    ids = Ids()
    user = User(id=ids.user_id, email=ids.email)
    customer_id = customer_of(localstripe, user)
    v1 = localstripe.client().v1
    card = v1.payment_methods.attach(CARD_OK, params={"customer": customer_id})
    v1.customers.update(
        customer_id, params={"invoice_settings": {"default_payment_method": card.id}}
    )
    created = localstripe.subscribe(customer_id, PRICES["pro"])
    with transaction() as db:
        apply_stripe_subscription(
            db,
            billing_context(),
            account=account_of_user(db, user_id=ids.user_id),
            subscription=created.to_dict(),
            as_of=None,
            cause=Cause.API,
        )
    return created.id, auth(ids.user_id, ids.email)


def test_cancel_at_period_end_then_now(localstripe, api):
    subscription_id, headers = subscribed_user(localstripe)
    assert subscription(subscription_id).plan == "pro"

    at_end = api.post(
        "/api/billing/subscription/cancel", json={"at_period_end": True}, headers=headers
    )

    assert at_end.status_code == 200, at_end.text
    assert at_end.json()["cancel_at_period_end"] is True
    assert at_end.json()["status"] == "active"
    assert localstripe.client().v1.subscriptions.retrieve(subscription_id).cancel_at_period_end
    assert api.get("/api/billing/info", headers=headers).json()["plan"] == "pro"

    now = api.post(
        "/api/billing/subscription/cancel", json={"at_period_end": False}, headers=headers
    )

    assert now.status_code == 200, now.text
    assert now.json()["status"] == "canceled"
    assert localstripe.client().v1.subscriptions.retrieve(subscription_id).status == "canceled"
    row = subscription(subscription_id)
    assert row.status == "canceled"
    assert api.get("/api/billing/info", headers=headers).json()["plan"] == "free"
    assert [c.cause for c in history(subscription_id)] == ["api", "api", "api"]
    assert len(emails(f"subscription-canceled:{subscription_id}")) == 1


def test_a_cancelled_subscription_cannot_be_cancelled_again(localstripe, api):
    subscription_id, headers = subscribed_user(localstripe)
    api.post("/api/billing/subscription/cancel", json={"at_period_end": False}, headers=headers)

    again = api.post(
        "/api/billing/subscription/cancel", json={"at_period_end": False}, headers=headers
    )

    assert again.status_code == 404
    assert subscription(subscription_id).status == "canceled"
