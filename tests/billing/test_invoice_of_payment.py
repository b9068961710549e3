"""Which stored invoice a payment paid: by its payment intent, else by its charge."""

from __future__ import annotations

from db.invoices import find_invoice_of_payment
from db.session import transaction
from tests.support.stripe_events import Ids, process_ok, stripe_event


def invoice_of(payment_intent_id: str | None, charge_id: str | None) -> str | None:
    with transaction() as session:
        found = find_invoice_of_payment(
            session, payment_intent_id=payment_intent_id, charge_id=charge_id
        )
        return found.stripe_invoice_id if found else None


def test_an_invoice_is_found_by_its_payment_intent_or_its_charge():
    ids = Ids()
    # 2022-11-15: the invoice names the payment intent and the charge that paid it.
    process_ok(stripe_event("invoice.paid", ids, api_version="2022-11-15"))

    assert invoice_of(ids.payment_intent, None) == ids.invoice
    assert invoice_of(None, ids.charge) == ids.invoice
    assert invoice_of(ids.payment_intent, ids.charge) == ids.invoice
    assert invoice_of(Ids().payment_intent, ids.charge) == ids.invoice
    assert invoice_of(ids.payment_intent, Ids().charge) == ids.invoice


def test_a_payment_no_invoice_names_finds_none():
    ids = Ids()
    process_ok(stripe_event("invoice.paid", ids, api_version="2022-11-15"))

    assert invoice_of(Ids().payment_intent, Ids().charge) is None
    assert invoice_of(None, None) is None
