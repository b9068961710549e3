"""`invoice.paid` and `invoice.payment_succeeded`: one grant and one receipt per invoice."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from db.models import Invoice
from db.session import new_session
from tests.support.events import stored
from tests.support.stripe_events import (
    API_VERSIONS,
    CREDITS,
    PRICES,
    Ids,
    account,
    emails,
    ledger,
    process_ok,
    stripe_event,
)


@pytest.mark.parametrize("api_version", API_VERSIONS)
@pytest.mark.parametrize("event_type", ["invoice.paid", "invoice.payment_succeeded"])
def test_a_paid_invoice_grants_the_plans_monthly_credits(api_version, event_type):
    ids = Ids()
    process_ok(stripe_event(event_type, ids, api_version=api_version))

    assert ledger(ids.customer) == [("plan_credits", ids.invoice, CREDITS["pro"])]
    assert account(ids.customer).email == ids.email
    (receipt,) = emails(f"receipt:{ids.invoice}")
    assert receipt.template == "payment_succeeded"
    assert receipt.recipients == [ids.email]
    assert receipt.context["credits_granted"] == CREDITS["pro"]
    assert receipt.context["period_end"] == 1769904000  # the line's service period
    assert receipt.context["invoice_url"].startswith("https://invoice.stripe.com/")


@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_both_paid_events_of_one_invoice_grant_once_and_send_one_receipt(api_version):
    ids = Ids()
    for event_type in ("invoice.paid", "invoice.payment_succeeded", "invoice.paid"):
        process_ok(stripe_event(event_type, ids, api_version=api_version))

    assert ledger(ids.customer) == [("plan_credits", ids.invoice, CREDITS["pro"])]
    assert len(emails(f"receipt:{ids.invoice}")) == 1


def _stored_invoice(invoice_id: str) -> Invoice:
    with new_session() as session:
        invoice = session.scalar(select(Invoice).where(Invoice.stripe_invoice_id == invoice_id))
        assert invoice is not None
        return invoice


def test_the_second_paid_event_of_a_pair_finds_the_first_applied_and_stops():
    ids = Ids()
    created = 1767225600
    process_ok(stripe_event("invoice.paid", ids, created=created))
    assert _stored_invoice(ids.invoice).paid_applied_as_of == datetime.fromtimestamp(created, UTC)

    # Stripe's second event carries the same description; one that differed would show if it
    # were stored, so this one says so.
    second = stripe_event("invoice.payment_succeeded", ids, created=created)
    second["data"]["object"]["hosted_invoice_url"] = "https://invoice.stripe.com/i/second"
    process_ok(second)

    assert _stored_invoice(ids.invoice).hosted_invoice_url != "https://invoice.stripe.com/i/second"
    assert ledger(ids.customer) == [("plan_credits", ids.invoice, CREDITS["pro"])]
    assert len(emails(f"receipt:{ids.invoice}")) == 1


def test_a_newer_paid_event_of_the_invoice_is_still_applied():
    ids = Ids()
    created = 1767225600
    process_ok(stripe_event("invoice.paid", ids, created=created))
    newer = stripe_event("invoice.payment_succeeded", ids, created=created + 60)
    newer["data"]["object"]["hosted_invoice_url"] = "https://invoice.stripe.com/i/newer"
    process_ok(newer)

    stored_invoice = _stored_invoice(ids.invoice)
    assert stored_invoice.hosted_invoice_url == "https://invoice.stripe.com/i/newer"
    assert stored_invoice.paid_applied_as_of == datetime.fromtimestamp(created + 60, UTC)
    # An older one after it changes nothing, the mark included.
    process_ok(stripe_event("invoice.paid", ids, created=created + 30))
    assert _stored_invoice(ids.invoice).paid_applied_as_of == stored_invoice.paid_applied_as_of
    assert ledger(ids.customer) == [("plan_credits", ids.invoice, CREDITS["pro"])]
    assert len(emails(f"receipt:{ids.invoice}")) == 1


def test_each_renewal_invoice_grants_again():
    first = Ids()
    second = first.next_invoice()
    process_ok(stripe_event("invoice.paid", first))
    renewal = stripe_event("invoice.paid", second)
    renewal["data"]["object"]["billing_reason"] = "subscription_cycle"
    process_ok(renewal)

    assert [amount for _, _, amount in ledger(first.customer)] == [CREDITS["pro"]] * 2


@pytest.mark.parametrize("reason", ["subscription_update", "manual"])
def test_a_proration_or_manual_invoice_grants_nothing(reason):
    ids = Ids()
    event = stripe_event("invoice.paid", ids)
    event["data"]["object"]["billing_reason"] = reason
    process_ok(event)

    assert ledger(ids.customer) == []
    assert len(emails(f"receipt:{ids.invoice}")) == 1  # still a payment: still a receipt


@pytest.mark.parametrize("reason", [None, "absent"])
def test_a_missing_or_null_billing_reason_counts_as_a_renewal(reason):
    ids = Ids()
    event = stripe_event("invoice.paid", ids, api_version="2022-11-15")
    if reason is None:
        event["data"]["object"]["billing_reason"] = None
    else:
        del event["data"]["object"]["billing_reason"]
    process_ok(event)

    assert ledger(ids.customer) == [("plan_credits", ids.invoice, CREDITS["pro"])]


def test_a_legacy_plan_id_matches_like_a_price():
    ids = Ids(price=PRICES["team"])
    process_ok(stripe_event("invoice.payment_succeeded", ids, api_version="2017-08-15"))

    assert ledger(ids.customer) == [("plan_credits", ids.invoice, CREDITS["team"])]


def test_a_price_outside_the_catalogue_is_stored_gets_no_credits_and_is_reported(caplog):
    ids = Ids(price="price_somebody_elses")
    process_ok(stripe_event("invoice.paid", ids))

    assert ledger(ids.customer) == []
    assert "price_somebody_elses" in caplog.text
    assert "not in the plan catalogue" in caplog.text


def test_an_invoice_without_a_price_and_no_known_subscription_waits_for_it():
    """Its lines say no price, Stripe cannot be asked: retried, not dropped, then replayable."""
    ids = Ids()
    event = stripe_event("invoice.paid", ids)
    event["data"]["object"]["lines"]["data"] = []
    process_ok(stripe_event("customer.subscription.created", ids))  # the plan is now known

    process_ok(event)

    assert ledger(ids.customer) == [("plan_credits", ids.invoice, CREDITS["pro"])]


def test_without_the_subscription_the_row_retries_and_fails_for_replay():
    ids = Ids()
    event = stripe_event("invoice.paid", ids)
    event["data"]["object"]["lines"]["data"] = []

    from tests.support.stripe_events import process

    assert process(event) == "failed"
    assert "not known yet" in stored(event["id"]).last_error
    assert ledger(ids.customer) == []


def test_an_old_proration_invoice_without_a_billing_reason_grants_nothing():
    ids = Ids()
    event = stripe_event("invoice.paid", ids, api_version="2017-08-15")
    for line in event["data"]["object"]["lines"]["data"]:
        line["proration"] = True
    process_ok(event)

    assert ledger(ids.customer) == []
