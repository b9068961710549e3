"""`invoice.payment_failed`: the subscription is past due; an email links the invoice to pay."""

from __future__ import annotations

import pytest

from tests.support.stripe_events import (
    API_VERSIONS,
    Ids,
    account,
    emails,
    history,
    known_customer,
    process_ok,
    stripe_event,
    subscription,
)

NOW = 1_800_000_000


@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_a_failed_payment_marks_past_due_and_sends_the_pay_now_link(api_version):
    ids = known_customer(Ids())
    process_ok(stripe_event("customer.subscription.created", ids, created=NOW))
    failed = stripe_event("invoice.payment_failed", ids, api_version=api_version, created=NOW + 1)
    process_ok(failed)
    process_ok({**failed, "id": failed["id"] + "_again"})

    assert subscription(ids.subscription).status == "past_due"
    assert history(ids.subscription)[-1].changes["status"] == ["active", "past_due"]
    (notice,) = emails(f"payment-failed:{ids.invoice}")
    assert notice.template == "payment_failed"
    assert notice.recipients == [ids.email]
    assert notice.context["invoice_url"].startswith("https://invoice.stripe.com/")


def test_a_late_failure_does_not_undo_a_newer_state():
    ids = known_customer(Ids())
    process_ok(stripe_event("customer.subscription.updated", ids, created=NOW + 60))
    process_ok(stripe_event("invoice.payment_failed", ids, created=NOW))

    assert subscription(ids.subscription).status == "active"
    assert len(emails(f"payment-failed:{ids.invoice}")) == 1  # the customer must still pay


@pytest.mark.parametrize("status", ["incomplete", "unpaid"])
def test_a_failure_never_turns_a_subscription_without_a_plan_into_past_due(status):
    """An incomplete first payment, or the last retry of an unpaid one in the same second,
    must not give the account its plan back."""
    ids = known_customer(Ids())
    created = stripe_event("customer.subscription.updated", ids, created=NOW)
    created["data"]["object"]["status"] = status
    process_ok(created)
    process_ok(stripe_event("invoice.payment_failed", ids, created=NOW + (status == "incomplete")))

    assert subscription(ids.subscription).status == status
    assert account(ids.customer).plan == "free"


def test_a_late_failure_of_an_invoice_paid_since_sends_nothing():
    ids = known_customer(Ids())
    process_ok(stripe_event("invoice.paid", ids, created=NOW + 60))
    process_ok(stripe_event("invoice.payment_failed", ids, created=NOW))

    assert emails(f"payment-failed:{ids.invoice}") == []
