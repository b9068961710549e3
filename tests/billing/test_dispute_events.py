"""The dispute handlers, one event at a time, in every API version: what is stored, held,
given back, recorded and told."""

from __future__ import annotations

import pytest

from tests.support.stripe_events import (
    API_VERSIONS,
    CREDITS,
    INVOICE_PAYMENT_LEFT_OUT,
    Ids,
    balance,
    dispute_event,
    dispute_row,
    dispute_statuses,
    emails,
    funds_movements,
    known_customer,
    ledger,
    process_ok,
    stripe_event,
)

NOW = 1_800_000_000


def paid_customer(api_version: str = "2022-11-15") -> Ids:
    """A customer whose invoice granted the Pro plan's credits. The newest API versions'
    invoices name no payment, so linking it needs Stripe (see test_dispute_stripe_calls)."""
    ids = known_customer(Ids())
    invoice_version = api_version if api_version not in INVOICE_PAYMENT_LEFT_OUT else "2022-11-15"
    process_ok(stripe_event("invoice.payment_succeeded", ids, api_version=invoice_version))
    assert balance(ids.customer) == CREDITS["pro"]
    return ids


@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_a_chargeback_holds_back_the_credits_its_payment_granted(api_version):
    ids = paid_customer(api_version)
    process_ok(dispute_event("charge.dispute.created", ids, api_version=api_version))

    row = dispute_row(ids.dispute)
    assert (row.status, row.is_inquiry, row.linked, row.amount) == (
        "needs_response",
        False,
        True,
        2900,
    )
    assert row.evidence_due_by is not None
    assert ledger(ids.customer)[-1] == ("dispute_hold", ids.dispute, -CREDITS["pro"])
    assert balance(ids.customer) == 0
    (alert,) = emails(f"dispute-opened:{ids.dispute}")
    assert alert.recipients == ["ops@example.com", "cfo@example.com"]
    assert alert.context["customer"].startswith(ids.customer)
    assert "@" not in alert.context["customer"].split("***")[0][len(ids.customer) + 3 :]
    assert (
        alert.context["dashboard_url"]
        == f"https://dashboard.stripe.com/test/disputes/{ids.dispute}"
    )


@pytest.mark.parametrize("status", ["warning_needs_response", "warning_under_review"])
def test_an_inquiry_holds_nothing_but_is_recorded_and_alerted(status):
    ids = paid_customer()
    process_ok(dispute_event("charge.dispute.created", ids, status=status))

    assert dispute_row(ids.dispute).is_inquiry is True
    assert balance(ids.customer) == CREDITS["pro"]
    (alert,) = emails(f"dispute-opened:{ids.dispute}:inquiry")
    assert alert.context["is_inquiry"] is True


def test_an_inquiry_that_becomes_a_chargeback_is_held_and_alerted_again():
    ids = paid_customer()
    process_ok(
        dispute_event("charge.dispute.created", ids, created=NOW, status="warning_needs_response")
    )
    process_ok(
        dispute_event("charge.dispute.updated", ids, created=NOW + 1, status="needs_response")
    )

    assert balance(ids.customer) == 0
    assert len(emails(f"dispute-opened:{ids.dispute}")) == 2


def test_a_dispute_that_matches_no_grant_is_stored_unlinked_and_alerted():
    ids = Ids()
    process_ok(dispute_event("charge.dispute.created", ids))

    row = dispute_row(ids.dispute)
    assert (row.linked, row.account_id) == (False, None)
    (alert,) = emails(f"dispute-opened:{ids.dispute}")
    assert alert.context["unlinked"] is True
    assert alert.context["customer"] == "unknown (unlinked)"


@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_an_update_records_the_new_status(api_version):
    ids = paid_customer(api_version)
    process_ok(dispute_event("charge.dispute.created", ids, api_version=api_version, created=NOW))
    process_ok(
        dispute_event("charge.dispute.updated", ids, api_version=api_version, created=NOW + 5)
    )

    assert dispute_row(ids.dispute).status == "under_review"
    assert dispute_row(ids.dispute).evidence_submission_count == 1
    assert dispute_statuses(ids.dispute) == ["needs_response", "under_review"]


@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_a_won_dispute_gives_the_credits_back_once(api_version):
    ids = paid_customer(api_version)
    process_ok(dispute_event("charge.dispute.created", ids, api_version=api_version, created=NOW))
    closed = dispute_event("charge.dispute.closed", ids, api_version=api_version, created=NOW + 9)
    process_ok(closed)
    process_ok({**closed, "id": closed["id"] + "_again"})

    assert [kind for kind, _, _ in ledger(ids.customer)] == [
        "plan_credits",
        "dispute_hold",
        "dispute_release",
    ]
    assert balance(ids.customer) == CREDITS["pro"]
    (outcome,) = emails(f"dispute-closed:{ids.dispute}")
    assert outcome.context["outcome"] == "won"


def test_a_closed_dispute_is_not_reopened_by_a_late_update_even_at_the_same_second():
    ids = paid_customer()
    process_ok(dispute_event("charge.dispute.closed", ids, created=NOW, status="lost"))
    process_ok(dispute_event("charge.dispute.updated", ids, created=NOW))

    assert dispute_row(ids.dispute).status == "lost"
    assert balance(ids.customer) == 0


@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_funds_movements_are_recorded_once_each_and_leave_the_ledger_alone(api_version):
    ids = paid_customer(api_version)
    withdrawn = dispute_event("charge.dispute.funds_withdrawn", ids, api_version=api_version)
    reinstated = dispute_event("charge.dispute.funds_reinstated", ids, api_version=api_version)
    for event in (withdrawn, reinstated):
        process_ok(event)
        process_ok({**event, "id": event["id"] + "_again"})  # the same movement, resent

    assert funds_movements(ids.dispute) == [
        ("funds_withdrawn", -2900, 1500),
        ("funds_reinstated", 2900, -1500),
    ]
    assert [kind for kind, _, _ in ledger(ids.customer) if kind.startswith("funds")] == []


def test_a_dispute_on_a_refunded_payment_holds_only_what_the_refund_left():
    ids = paid_customer()
    refund = stripe_event("charge.refunded", ids, api_version="2022-11-15")
    refund["data"]["object"].update(amount=2900, amount_refunded=1450)
    process_ok(refund)
    process_ok(dispute_event("charge.dispute.created", ids, created=NOW))
    process_ok(dispute_event("charge.dispute.closed", ids, created=NOW + 1, status="lost"))

    assert balance(ids.customer) == 0  # half refunded, half held: never below what was granted


def test_a_prevented_dispute_gives_its_hold_back():
    ids = paid_customer()
    process_ok(dispute_event("charge.dispute.created", ids, created=NOW))
    process_ok(dispute_event("charge.dispute.closed", ids, created=NOW + 1, status="prevented"))

    assert balance(ids.customer) == CREDITS["pro"]
