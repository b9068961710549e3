"""`invoice.payment_action_required` (3-D Secure): the invoice is stored and the customer gets
the hosted invoice link to confirm, once per invoice and attempt."""

from __future__ import annotations

import pytest

from db.invoices import find_invoice
from db.session import new_session
from tests.support.stripe_events import (
    API_VERSIONS,
    Ids,
    emails,
    known_customer,
    process_ok,
    redelivered,
    stripe_event,
)

NOW = 1_800_000_000


@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_the_customer_gets_the_link_to_confirm_once_per_attempt(api_version):
    ids = known_customer(Ids())
    event = stripe_event(
        "invoice.payment_action_required", ids, api_version=api_version, created=NOW
    )
    process_ok(event)
    process_ok(redelivered(event))

    with new_session() as session:
        stored = find_invoice(session, invoice_id=ids.invoice)
        assert stored is not None and stored.status == "open"
    (notice,) = emails(f"payment-action-required:{ids.invoice}:")
    assert notice.template == "payment_action_required"
    assert notice.recipients == [ids.email]
    assert notice.context["invoice_url"].startswith("https://invoice.stripe.com/")

    second_attempt = stripe_event(
        "invoice.payment_action_required", ids, api_version=api_version, created=NOW + 60
    )
    second_attempt["data"]["object"]["attempt_count"] = 2
    process_ok(second_attempt)
    assert len(emails(f"payment-action-required:{ids.invoice}:")) == 2


def test_an_invoice_paid_since_needs_no_action():
    ids = known_customer(Ids())
    process_ok(stripe_event("invoice.paid", ids, created=NOW + 60))
    process_ok(stripe_event("invoice.payment_action_required", ids, created=NOW))

    assert emails(f"payment-action-required:{ids.invoice}:") == []
