"""`checkout.session.completed`: link the user; a subscription's first invoice or a credit
pack's payment intent is granted once, whichever event names it first."""

from __future__ import annotations

import pytest

from tests.support.stripe_events import (
    API_VERSIONS,
    CREDITS,
    Ids,
    account,
    emails,
    ledger,
    process,
    process_ok,
    stripe_event,
)


@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_checkout_links_the_user_to_the_customer(api_version):
    ids = Ids()
    process_ok(stripe_event("checkout.session.completed", ids, api_version=api_version))

    linked = account(ids.customer)
    assert linked.user_id == ids.user_id
    assert linked.email == ids.email


@pytest.mark.parametrize("order", ["checkout-first", "invoice-first"])
def test_a_subscription_checkout_and_its_first_invoice_grant_once(order):
    ids = Ids()
    events = [
        stripe_event("customer.subscription.created", ids),
        stripe_event("checkout.session.completed", ids),
        stripe_event("invoice.paid", ids),
        stripe_event("invoice.payment_succeeded", ids),
    ]
    if order == "invoice-first":
        events.reverse()
    for event in events:
        process_ok(event)

    assert ledger(ids.customer) == [("plan_credits", ids.invoice, CREDITS["pro"])]
    assert len(emails(f"receipt:{ids.invoice}")) == 1


@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_a_credit_pack_is_granted_once_by_its_payment_intent(api_version):
    ids = Ids(pack="large")
    event = stripe_event(
        "checkout.session.completed", ids, api_version=api_version, variant="payment"
    )
    process_ok(event)
    process_ok({**event, "id": event["id"] + "_redelivered"})

    assert ledger(ids.customer) == [("pack_credits", ids.payment_intent, 3000)]


def test_an_unpaid_pack_checkout_grants_nothing_yet():
    ids = Ids()
    event = stripe_event("checkout.session.completed", ids, variant="payment")
    event["data"]["object"]["payment_status"] = "unpaid"
    process_ok(event)

    assert ledger(ids.customer) == []


def test_an_unknown_pack_fails_the_event_for_an_operator():
    ids = Ids(pack="no_such_pack")
    event = stripe_event("checkout.session.completed", ids, variant="payment")

    assert process(event) == "failed"
    assert ledger(ids.customer) == []


def test_a_delayed_payment_grants_when_stripe_says_it_arrived():
    ids = Ids()
    completed = stripe_event("checkout.session.completed", ids, variant="payment")
    completed["data"]["object"]["payment_status"] = "unpaid"
    process_ok(completed)
    assert ledger(ids.customer) == []

    arrived = stripe_event("checkout.session.completed", ids, variant="payment")
    arrived["type"] = "checkout.session.async_payment_succeeded"
    process_ok(arrived)

    assert ledger(ids.customer) == [("pack_credits", ids.payment_intent, 500)]


def test_an_unpaid_subscription_checkout_leaves_the_grant_to_the_paid_invoice():
    ids = Ids()
    process_ok(stripe_event("customer.subscription.created", ids))
    checkout = stripe_event("checkout.session.completed", ids)
    checkout["data"]["object"]["payment_status"] = "unpaid"
    process_ok(checkout)

    assert ledger(ids.customer) == []


def test_a_paid_guest_checkout_fails_loudly_instead_of_dropping_the_credits():
    ids = Ids()
    event = stripe_event("checkout.session.completed", ids, variant="payment")
    event["data"]["object"]["customer"] = None

    assert process(event) == "failed"
