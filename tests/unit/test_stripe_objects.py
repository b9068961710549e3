"""The Stripe object readers find each field wherever the account's API version keeps it,
from 2017-08-15 to the newest (tests/fixtures/stripe/README.md maps where things live)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.stripe_objects import (
    customer_email,
    invoice_grants_credits,
    invoice_payment_ids,
    invoice_period,
    invoice_price_id,
    invoice_subscription_id,
    metadata_user_id,
    object_id,
    previous_price_id,
    subscription_period,
    subscription_price_id,
    timestamp,
)
from tests.support.stripe_events import API_VERSIONS, Ids, stripe_event

# Every fixture bills the period from 2026-01-01 to 2026-02-01.
PERIOD = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))


def data_object(event_type: str, ids: Ids, api_version: str) -> dict:
    return stripe_event(event_type, ids, api_version=api_version)["data"]["object"]


@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_an_invoice_names_its_subscription_price_and_period_in_every_version(api_version):
    ids = Ids()
    invoice = data_object("invoice.payment_succeeded", ids, api_version)

    assert invoice_subscription_id(invoice) == ids.subscription
    assert invoice_price_id(invoice) == ids.price
    assert invoice_period(invoice) == PERIOD
    assert invoice_grants_credits(invoice) is True


@pytest.mark.parametrize(
    ("api_version", "paid_by"),
    [
        ("2017-08-15", ("charge",)),  # the charge arrives expanded; no payment intent yet
        ("2022-11-15", ("payment_intent", "charge")),
        ("2025-09-30.clover", ()),  # `payments` is left out of webhooks: asked for later
        ("2026-03-25.dahlia", ()),
        ("2026-10-28.endive", ()),
    ],
)
def test_an_invoices_payment_is_read_from_where_its_version_keeps_it(api_version, paid_by):
    ids = Ids()
    invoice = data_object("invoice.payment_succeeded", ids, api_version)

    intent, charge = invoice_payment_ids(invoice)

    assert intent == (ids.payment_intent if "payment_intent" in paid_by else None)
    assert charge == (ids.charge if "charge" in paid_by else None)


def test_the_newest_invoice_payments_list_names_the_payment():
    invoice = {
        "payments": {
            "object": "list",
            "data": [{"payment": {"type": "payment_intent", "payment_intent": "pi_1"}}],
        }
    }
    assert invoice_payment_ids(invoice) == ("pi_1", None)


@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_a_subscription_names_its_price_period_and_previous_price_in_every_version(api_version):
    ids = Ids()
    event = stripe_event("customer.subscription.updated", ids, api_version=api_version)
    subscription = event["data"]["object"]

    assert subscription_price_id(subscription) == ids.price
    assert subscription_period(subscription) == PERIOD
    assert previous_price_id(event["data"]["previous_attributes"]) == ids.previous_price


def test_an_update_that_kept_the_price_has_no_previous_price():
    assert previous_price_id({}) is None
    assert previous_price_id({"status": "active"}) is None


@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_the_customers_email_and_user_come_from_a_customer_and_a_checkout(api_version):
    ids = Ids()
    customer = data_object("customer.created", ids, api_version)
    session = data_object("checkout.session.completed", ids, api_version)

    assert customer_email(customer) == customer_email(session) == ids.email
    assert metadata_user_id(customer) == metadata_user_id(session) == ids.user_id


def test_only_a_customer_objects_own_email_is_the_customers():
    # `email` is the customer's on a customer only; an invoice names it `customer_email`.
    assert customer_email({"object": "charge", "email": "not-the-customer@example.com"}) is None
    assert customer_email({"object": "invoice", "customer_email": "jane@example.com"}) == (
        "jane@example.com"
    )


def test_a_renewal_with_a_proration_line_bills_the_subscription_lines_price():
    invoice = {
        "billing_reason": "subscription_cycle",
        "lines": {
            "data": [
                {"proration": True, "price": {"id": "price_old"}, "period": {"end": 1}},
                {"type": "subscription", "price": {"id": "price_new"}, "period": {"end": 2}},
            ]
        },
    }
    assert invoice_price_id(invoice) == "price_new"
    assert invoice_period(invoice)[1] == timestamp(2)
    assert invoice_grants_credits(invoice) is True


@pytest.mark.parametrize(
    ("billing_reason", "proration_only", "grants"),
    [
        ("subscription_update", False, False),
        ("manual", False, False),
        (None, True, False),  # old versions send no reason: all prorations settle a change
        (None, False, True),
        ("subscription_cycle", False, True),
    ],
)
def test_which_invoices_grant_a_periods_credits(billing_reason, proration_only, grants):
    line = {"type": "subscription", "price": "price_1", "proration": proration_only}
    invoice = {"billing_reason": billing_reason, "lines": {"data": [line]}}
    assert invoice_grants_credits(invoice) is grants


def test_ids_and_times_are_read_whether_expanded_or_not():
    assert object_id("cus_1") == object_id({"id": "cus_1", "object": "customer"}) == "cus_1"
    assert object_id("") is None and object_id(None) is None and object_id({}) is None
    assert timestamp(1767225600) == PERIOD[0]
    assert timestamp(True) is None and timestamp("1767225600") is None
