"""`invoice.finalized`: the invoice is stored, by the same function the paid events use (so
what is hooked on storing an invoice runs for it too); a later state is never undone."""

from __future__ import annotations

import pytest

import billing.invoice_notices
import billing.invoices
from db import invoices as db_invoices
from db.invoices import find_invoice
from db.session import new_session
from tests.support.stripe_events import (
    API_VERSIONS,
    CREDITS,
    Ids,
    balance,
    emails,
    known_customer,
    process_ok,
    redelivered,
    stripe_event,
)

NOW = 1_800_000_000


def stored(invoice_id: str):
    with new_session() as session:
        return find_invoice(session, invoice_id=invoice_id)


@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_a_finalized_invoice_is_stored_and_grants_nothing(api_version):
    ids = known_customer(Ids())
    event = stripe_event("invoice.finalized", ids, api_version=api_version, created=NOW)
    process_ok(event)
    process_ok(redelivered(event))

    invoice = stored(ids.invoice)
    assert (invoice.status, invoice.amount_due, invoice.plan) == ("open", 2900, "pro")
    assert invoice.hosted_invoice_url.startswith("https://invoice.stripe.com/")
    assert invoice.invoice_pdf.startswith("https://pay.stripe.com/")
    assert balance(ids.customer) == 0
    assert emails(f"receipt:{ids.invoice}") == []


def test_a_late_finalized_event_does_not_undo_the_payment():
    ids = known_customer(Ids())
    process_ok(stripe_event("invoice.paid", ids, created=NOW + 60))
    process_ok(stripe_event("invoice.finalized", ids, created=NOW))

    assert stored(ids.invoice).status == "paid"
    assert balance(ids.customer) == CREDITS["pro"]


def test_finalized_and_paid_invoices_are_stored_by_one_function():
    """The invoice archive hangs on `db.invoices.store_invoice`: both paths must call it."""
    assert billing.invoice_notices.store_invoice is db_invoices.store_invoice
    assert billing.invoices.store_invoice is db_invoices.store_invoice
