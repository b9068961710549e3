"""`customer.created` / `customer.updated`: the email stays current, `metadata.user_id` links."""

from __future__ import annotations

import pytest

from db.invoices import find_invoice
from db.session import new_session
from tests.support.stripe_events import (
    API_VERSIONS,
    CREDITS,
    Ids,
    account,
    ledger,
    process_ok,
    stripe_event,
)


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


@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_a_deleted_customer_is_marked_and_unlinked_with_its_ledger_kept(api_version):
    ids = Ids()
    process_ok(stripe_event("customer.created", ids, api_version=api_version))
    process_ok(stripe_event("invoice.paid", ids, api_version=api_version))
    deleted = stripe_event("customer.deleted", ids, api_version=api_version)
    process_ok(deleted)
    process_ok({**deleted, "id": deleted["id"] + "_again"})

    gone = account(ids.customer)
    assert gone.deleted_at is not None
    assert gone.user_id is None
    assert ledger(ids.customer) == [("plan_credits", ids.invoice, CREDITS["pro"])]
    assert invoice_kept(ids)


def test_a_late_event_of_a_deleted_customer_does_not_link_its_user_again():
    ids = Ids()
    process_ok(stripe_event("customer.deleted", ids, created=1_800_000_060))
    process_ok(stripe_event("customer.updated", ids, created=1_800_000_000))
    process_ok(stripe_event("checkout.session.completed", ids, created=1_800_000_010))

    assert account(ids.customer).user_id is None


def invoice_kept(ids: Ids) -> bool:
    with new_session() as session:
        return find_invoice(session, invoice_id=ids.invoice) is not None
