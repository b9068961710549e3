"""What the dispute rules ask of Stripe, against a Stripe fake over HTTP: linking a dispute
the ledger cannot match, `DISPUTE_LOST_ACTION`, and the admin evidence and accept actions."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from billing.context import BillingContext
from tests.conftest import make_client
from tests.support.stripe_events import (
    CREDITS,
    Ids,
    account,
    balance,
    dispute_event,
    dispute_row,
    emails,
    known_customer,
    ledger,
    process,
    process_ok,
    stripe_event,
    subscription,
)
from tests.support.stripe_fake import TEST_KEY, StripeFake

T0 = 1_800_000_000


@pytest.fixture
def fake(stripe_fake: StripeFake) -> StripeFake:
    return stripe_fake


@pytest.fixture
def lost_action_cancels(billing_ctx: BillingContext) -> BillingContext:
    """The context of DISPUTE_LOST_ACTION=cancel_subscription (with the fake's client)."""
    settings = billing_ctx.settings.model_copy(
        update={"dispute_lost_action": "cancel_subscription"}
    )
    return replace(billing_ctx, settings=settings)


def grant_without_payment_ids(ids: Ids, fake: StripeFake) -> None:
    """The first period granted by Checkout, which names the invoice but not the payment."""
    known_customer(ids)
    fake.subscriptions[ids.subscription] = stripe_event("customer.subscription.created", ids)[
        "data"
    ]["object"]
    process_ok(stripe_event("customer.subscription.created", ids))
    checkout = stripe_event("checkout.session.completed", ids)
    checkout["data"]["object"]["metadata"]["plan"] = "pro"  # as the platform's sessions do
    process_ok(checkout)
    assert balance(ids.customer) == CREDITS["pro"]


def test_an_old_charge_links_through_its_invoice(fake):
    ids = Ids()
    grant_without_payment_ids(ids, fake)
    fake.charges[ids.charge] = {
        "id": ids.charge,
        "object": "charge",
        "customer": ids.customer,
        "invoice": ids.invoice,
        "payment_intent": None,
    }

    process_ok(dispute_event("charge.dispute.created", ids, api_version="2017-08-15"))

    assert dispute_row(ids.dispute).linked
    assert balance(ids.customer) == 0


def test_a_new_payment_links_through_the_invoice_payments(fake):
    ids = Ids()
    grant_without_payment_ids(ids, fake)
    fake.charges[ids.charge] = {"id": ids.charge, "object": "charge", "customer": ids.customer}
    fake.invoice_payments.append(
        {
            "id": ids.invoice_payment,
            "object": "invoice_payment",
            "invoice": ids.invoice,
            "payment": {"type": "payment_intent", "payment_intent": ids.payment_intent},
        }
    )

    process_ok(dispute_event("charge.dispute.created", ids))

    assert dispute_row(ids.dispute).linked
    assert ledger(ids.customer)[-1] == ("dispute_hold", ids.dispute, -CREDITS["pro"])


def test_a_charge_stripe_does_not_know_leaves_the_dispute_unlinked(fake):
    ids = Ids()
    process_ok(dispute_event("charge.dispute.created", ids))

    assert dispute_row(ids.dispute).linked is False
    assert ("GET", f"/v1/charges/{ids.charge}") in [(m, p) for m, p, _ in fake.requests]


def test_a_lost_chargeback_can_cancel_the_subscription(fake, lost_action_cancels):
    ids = known_customer(Ids())
    process_ok(stripe_event("customer.subscription.created", ids, created=T0))
    process_ok(stripe_event("invoice.paid", ids, api_version="2022-11-15"))
    fake.subscriptions[ids.subscription] = stripe_event("customer.subscription.created", ids)[
        "data"
    ]["object"]

    process_ok(dispute_event("charge.dispute.created", ids, created=T0 + 1))
    closed = dispute_event("charge.dispute.closed", ids, created=T0 + 2, status="lost")
    assert process(closed, ctx=lost_action_cancels) == "processed"

    assert subscription(ids.subscription).status == "canceled"
    assert account(ids.customer).plan == "free"
    assert balance(ids.customer) == 0


def test_by_default_a_lost_chargeback_leaves_the_subscription(fake):
    ids = known_customer(Ids())
    process_ok(stripe_event("customer.subscription.created", ids, created=T0))
    process_ok(stripe_event("invoice.paid", ids))
    process_ok(dispute_event("charge.dispute.closed", ids, created=T0 + 2, status="lost"))

    assert subscription(ids.subscription).status == "active"
    assert not [r for r in fake.requests if r[0] == "DELETE"]


# --- The admin actions ----------------------------------------------------------------------


@pytest.fixture
def admin_api(fake) -> Iterator:
    with make_client(stripe_api_base=fake.url, stripe_secret_key_test=TEST_KEY) as client:
        yield client


def open_dispute(fake: StripeFake) -> Ids:
    ids = known_customer(Ids())
    process_ok(stripe_event("invoice.paid", ids, api_version="2022-11-15"))
    event = dispute_event("charge.dispute.created", ids, created=T0)
    process_ok(event)
    fake.disputes[ids.dispute] = event["data"]["object"]
    return ids


def test_evidence_is_staged_then_submitted(fake, admin_api, admin_headers):
    ids = open_dispute(fake)
    url = f"/api/admin/disputes/{ids.dispute}/evidence"

    staged = admin_api.post(
        url,
        json={"evidence": {"uncategorized_text": "Used 4,000 credits after paying."}},
        headers=admin_headers,
    )
    assert staged.status_code == 200, staged.text
    assert staged.json()["status"] == "needs_response"
    assert fake.requests[-1][2] == {
        "evidence[uncategorized_text]": "Used 4,000 credits after paying.",
        "submit": "false",
    }

    submitted = admin_api.post(
        url,
        json={"evidence": {"product_description": "Credits"}, "submit": True},
        headers=admin_headers,
    )
    assert submitted.status_code == 200
    assert (submitted.json()["status"], submitted.json()["evidence_submissions"]) == (
        "under_review",
        1,
    )
    assert dispute_row(ids.dispute).status == "under_review"


def test_accepting_concedes_and_keeps_the_hold(fake, admin_api, admin_headers):
    ids = open_dispute(fake)

    answer = admin_api.post(f"/api/admin/disputes/{ids.dispute}/accept", headers=admin_headers)

    assert answer.status_code == 200
    assert answer.json()["status"] == "lost"
    assert dispute_row(ids.dispute).status == "lost"
    assert balance(ids.customer) == 0


def test_a_closed_dispute_refuses_both_actions_with_409(fake, admin_api, admin_headers):
    ids = open_dispute(fake)
    process_ok(dispute_event("charge.dispute.closed", ids, created=T0 + 5, status="won"))
    calls = len(fake.requests)

    for action, body in (("evidence", {"evidence": {"uncategorized_text": "x"}}), ("accept", None)):
        answer = admin_api.post(
            f"/api/admin/disputes/{ids.dispute}/{action}", json=body, headers=admin_headers
        )
        assert answer.status_code == 409
        assert "already closed" in answer.json()["detail"]
    assert len(fake.requests) == calls  # Stripe was not asked


def test_bad_requests_get_clear_answers(fake, admin_api, admin_headers, client):
    ids = open_dispute(fake)
    base = f"/api/admin/disputes/{ids.dispute}"

    unknown = admin_api.post("/api/admin/disputes/du_nobody/accept", headers=admin_headers)
    bad_field = admin_api.post(
        f"{base}/evidence", json={"evidence": {"receipt": "file_123"}}, headers=admin_headers
    )
    no_token = admin_api.post(f"{base}/accept")
    no_stripe = client.post(f"{base}/accept", headers=admin_headers)

    assert unknown.status_code == 404
    assert bad_field.status_code == 422
    assert no_token.status_code == 401
    assert no_stripe.status_code == 503
    assert "STRIPE_SECRET_KEY" in no_stripe.json()["detail"]


def test_the_list_and_the_customer_view_show_disputes(fake, admin_api, admin_headers):
    ids = open_dispute(fake)

    listed = admin_api.get("/api/admin/disputes?status=needs_response", headers=admin_headers)
    customer = admin_api.get(f"/api/admin/customers/{ids.customer}", headers=admin_headers)

    assert ids.dispute in [d["id"] for d in listed.json()["items"]]
    assert all(d["status"] == "needs_response" for d in listed.json()["items"])
    (dispute,) = customer.json()["disputes"]
    assert (dispute["id"], dispute["status"], dispute["amount"]) == (
        ids.dispute,
        "needs_response",
        2900,
    )
    assert dispute["evidence_due_by"] is not None


def test_a_lost_chargeback_whose_subscription_stripe_already_ended_still_closes(
    fake, lost_action_cancels
):
    ids = known_customer(Ids())
    process_ok(stripe_event("customer.subscription.created", ids, created=T0))
    process_ok(stripe_event("invoice.paid", ids, api_version="2022-11-15"))
    ended = stripe_event("customer.subscription.deleted", ids)["data"]["object"]
    fake.subscriptions[ids.subscription] = ended  # the `deleted` event is still on its way

    closed = dispute_event("charge.dispute.closed", ids, created=T0 + 2, status="lost")
    assert process(closed, ctx=lost_action_cancels) == "processed"

    assert dispute_row(ids.dispute).status == "lost"
    assert subscription(ids.subscription).status == "canceled"
    assert emails(f"dispute-closed:{ids.dispute}")
    # ... and when the late `deleted` event comes, the customer is still told, once.
    process_ok(stripe_event("customer.subscription.deleted", ids, created=T0 + 3))
    assert len(emails(f"subscription-canceled:{ids.subscription}")) == 1
