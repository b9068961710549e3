"""`customer.created` / `customer.updated`: the email stays current, `metadata.user_id` links."""

from __future__ import annotations

import pytest

from tests.support.stripe_events import API_VERSIONS, Ids, account, process_ok, stripe_event


@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_a_new_customer_is_adopted_with_its_email_and_user(api_version):
    ids = Ids()
    process_ok(stripe_event("customer.created", ids, api_version=api_version))

    adopted = account(ids.customer)
    assert (adopted.email, adopted.user_id, adopted.plan) == (ids.email, ids.user_id, "free")


def test_an_update_keeps_the_email_current():
    ids = Ids()
    process_ok(stripe_event("customer.created", ids))
    new_email = "jane.new@example.com"
    update = stripe_event("customer.updated", ids)
    update["data"]["object"]["email"] = new_email
    process_ok(update)

    assert account(ids.customer).email == new_email


def test_a_late_update_never_brings_an_old_address_back():
    ids = Ids()
    newer = stripe_event("customer.updated", ids, created=1_800_000_060)
    newer["data"]["object"]["email"] = "jane.now@example.com"
    older = stripe_event("customer.updated", ids, created=1_800_000_000)
    older["data"]["object"]["email"] = "jane.then@example.com"

    process_ok(newer)
    process_ok(older)

    assert account(ids.customer).email == "jane.now@example.com"


def test_an_invoice_snapshot_does_not_overwrite_the_customers_email():
    ids = Ids()
    process_ok(stripe_event("customer.created", ids))
    invoice = stripe_event("invoice.paid", ids)
    invoice["data"]["object"]["customer_email"] = "old-snapshot@example.com"
    process_ok(invoice)

    assert account(ids.customer).email == ids.email
