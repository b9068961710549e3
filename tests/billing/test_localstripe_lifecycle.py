"""A whole subscription's life through a real Stripe fake over HTTP (localstripe): subscribe,
renew, cancel. Its webhooks come about a second late, concurrently, in any order, with equal
`created` times, in API version 2017-08-15, and are sent once.

The platform here is its own API and worker processes, keyed for the fake and on a broker
prefix of their own, so no other test's events meet a Stripe key."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import WEBHOOK_SECRET
from tests.support.localstripe import TEST_KEY, LocalStripe
from tests.support.processes import ApiProcess, WorkerProcess
from tests.support.stripe_events import (
    CREDITS,
    PRICES,
    account,
    emails,
    history,
    ledger,
    subscription,
)

EVENTS = [
    "customer.created",
    "customer.updated",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
]


@pytest.fixture(scope="module")
def fake() -> Iterator[LocalStripe]:
    with LocalStripe() as stripe_fake:
        # Legacy plans whose ids are the catalogue's configured prices.
        for plan in ("starter", "pro"):
            stripe_fake.create_plan(PRICES[plan], amount=1900 if plan == "starter" else 2900)
        yield stripe_fake


@pytest.fixture(scope="module")
def platform(fake: LocalStripe) -> Iterator[ApiProcess]:
    env = {
        "STRIPE_API_BASE": fake.url,
        "STRIPE_SECRET_KEY_TEST": TEST_KEY,
        "BROKER_KEY_PREFIX": f"{os.environ['BROKER_KEY_PREFIX']}localstripe:",
    }
    api, worker = ApiProcess(env), WorkerProcess(env)
    api.start()
    worker.start()
    fake.register_webhook(f"{api.url}/api/stripe/webhook", WEBHOOK_SECRET, EVENTS)
    yield api
    worker.stop()
    api.stop()


def eventually(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("the platform never reached the expected state")
        time.sleep(0.1)


def test_subscribe_renew_cancel(fake: LocalStripe, platform: ApiProcess):
    user_id = f"user_{uuid.uuid4().hex[:8]}"
    customer = fake.create_customer(email=f"{user_id}@example.com", metadata={"user_id": user_id})

    subscribed = fake.subscribe(customer, PRICES["pro"])
    eventually(lambda: len(ledger(customer)) == 1 and subscription(subscribed.id) is not None)

    adopted = account(customer)
    assert (adopted.user_id, adopted.email, adopted.plan) == (
        user_id,
        f"{user_id}@example.com",
        "pro",
    )
    first_invoice = subscribed.latest_invoice
    assert ledger(customer) == [("plan_credits", first_invoice, CREDITS["pro"])]
    eventually(lambda: len(emails(f"receipt:{first_invoice}")) == 1)

    renewal = fake.renew(subscribed.id)
    eventually(lambda: len(ledger(customer)) == 2)
    assert ledger(customer)[1] == ("plan_credits", renewal.id, CREDITS["pro"])
    eventually(lambda: len(emails(f"receipt:{renewal.id}")) == 1)

    fake.cancel(subscribed.id)
    eventually(lambda: subscription(subscribed.id).status == "canceled")
    assert account(customer).plan == "free"
    eventually(lambda: len(emails(f"subscription-canceled:{subscribed.id}")) == 1)
    assert [c.status for c in history(subscribed.id)][-1] == "canceled"
    assert sum(amount for _, _, amount in ledger(customer)) == 2 * CREDITS["pro"]
