"""`radar.early_fraud_warning.*` and `charge.succeeded` through the real handlers and
PostgreSQL: the warning's hold as one more fact of its payment (in any order with the
purchase, refunds and disputes, never held twice), the policy's refund and cancellation
against a Stripe fake over HTTP, and each charge's card kept for evidence."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from billing.context import BillingContext
from db.models import PaymentRecord
from db.session import new_session
from tests.support.stripe_events import (
    API_VERSIONS,
    CREDITS,
    Ids,
    balance,
    dispute_event,
    emails,
    known_customer,
    ledger,
    process,
    process_ok,
    stripe_event,
    subscription,
)
from tests.support.stripe_fake import StripeFake

T0 = 1_800_000_000
PRO = CREDITS["pro"]
PACK = 500


def paid_invoice(ids: Ids) -> None:
    known_customer(ids)
    # An API version whose invoice names its payment, so the warning finds it without Stripe.
    process_ok(stripe_event("invoice.paid", ids, api_version="2022-11-15"))


def warning(
    ids: Ids, kind: str = "created", *, api_version: str = API_VERSIONS[-1], created: int = T0
):
    return stripe_event(
        f"radar.early_fraud_warning.{kind}", ids, api_version=api_version, created=created
    )


def kinds(ids: Ids) -> list[tuple[str, int]]:
    return [(kind, amount) for kind, _, amount in ledger(ids.customer)]


@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_a_warning_holds_what_its_payment_bought_keyed_by_its_id(api_version):
    ids = Ids()
    paid_invoice(ids)

    process_ok(warning(ids, api_version=api_version))
    process_ok(warning(ids, api_version=api_version))  # a duplicate delivery

    assert ledger(ids.customer)[1:] == [("fraud_warning_hold", ids.warning, -PRO)]
    assert len(emails(f"fraud-warning:{ids.warning}")) == 1


def test_a_later_dispute_replaces_the_warnings_hold_and_a_won_one_gives_all_back():
    ids = Ids()
    paid_invoice(ids)
    process_ok(warning(ids))

    process_ok(dispute_event("charge.dispute.created", ids, created=T0 + 1))

    assert kinds(ids) == [  # in one transaction: the balance never shows both holds
        ("plan_credits", PRO),
        ("fraud_warning_hold", -PRO),
        ("dispute_hold", -PRO),
        ("fraud_warning_release", PRO),
    ]
    process_ok(dispute_event("charge.dispute.closed", ids, created=T0 + 2, status="won"))
    process_ok(warning(ids, "updated", created=T0 + 3))
    assert balance(ids.customer) == PRO


def test_a_warning_after_the_dispute_holds_nothing_more():
    ids = Ids()
    paid_invoice(ids)
    process_ok(dispute_event("charge.dispute.created", ids))

    process_ok(warning(ids))

    assert kinds(ids) == [("plan_credits", PRO), ("dispute_hold", -PRO)]


def test_a_partial_refund_after_the_warning_holds_only_the_rest():
    ids = Ids()
    paid_invoice(ids)
    process_ok(warning(ids))
    refunded = stripe_event("charge.refunded", ids, api_version="2022-11-15")
    refunded["data"]["object"].update(amount=2900, amount_refunded=1450, refunded=False)

    process_ok(refunded)

    assert balance(ids.customer) == 0
    assert kinds(ids)[2:] == [("refund", -PRO // 2), ("fraud_warning_release", PRO // 2)]


def test_a_warning_met_before_its_purchase_holds_once_the_purchase_is_granted():
    ids = known_customer(Ids())
    process_ok(warning(ids))
    assert balance(ids.customer) == 0 and ledger(ids.customer) == []

    process_ok(stripe_event("checkout.session.completed", ids, variant="payment"))

    assert kinds(ids) == [("pack_credits", PACK), ("fraud_warning_hold", -PACK)]


@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_each_charge_is_kept_with_its_card_and_user(api_version):
    ids = known_customer(Ids())

    process_ok(stripe_event("charge.succeeded", ids, api_version=api_version))

    with new_session() as session:
        record = session.scalar(select(PaymentRecord).where(PaymentRecord.charge_id == ids.charge))
    assert record is not None
    assert (record.card_fingerprint, record.card_brand, record.card_network) == (
        ids.card_fingerprint,
        "visa",
        "visa",
    )
    assert record.user_id == ids.user_id  # the customer's `metadata.user_id`
    assert record.amount == 2900


# --- The policy, against the Stripe fake -------------------------------------------------------


def policy(ctx: BillingContext, action: str, max_amount: int) -> BillingContext:
    settings = ctx.settings.model_copy(
        update={"efw_action": action, "efw_auto_refund_max_amount": max_amount}
    )
    return replace(ctx, settings=settings)


def charge_known_to(fake: StripeFake, ids: Ids, amount: int = 2900) -> None:
    fake.charges[ids.charge] = {
        "id": ids.charge,
        "object": "charge",
        "amount": amount,
        "customer": ids.customer,
        "payment_intent": ids.payment_intent,
    }


def test_refund_and_cancel_refunds_and_cancels_once_each(stripe_fake, billing_ctx):
    ids = known_customer(Ids())
    process_ok(stripe_event("customer.subscription.created", ids, created=T0))
    process_ok(stripe_event("invoice.paid", ids, api_version="2022-11-15"))
    stripe_fake.subscriptions[ids.subscription] = stripe_event(
        "customer.subscription.created", ids
    )["data"]["object"]
    charge_known_to(stripe_fake, ids)
    ctx = policy(billing_ctx, "refund_and_cancel", 5000)

    for _ in range(2):
        assert process(warning(ids), ctx=ctx) == "processed"

    assert stripe_fake.idempotency_keys("/v1/refunds") == [f"efw-refund:{ids.warning}"]
    assert stripe_fake.idempotency_keys(f"/v1/subscriptions/{ids.subscription}") == [
        f"efw-cancel:{ids.warning}"
    ]
    assert stripe_fake.forms("POST", "/v1/refunds")[0]["reason"] == "fraudulent"
    assert subscription(ids.subscription).status == "canceled"


@pytest.mark.parametrize(
    ("action", "max_amount", "actionable"),
    [("hold", 5000, True), ("refund", 0, True), ("refund", 2899, True), ("refund", 5000, False)],
)
def test_the_policy_only_refunds_what_it_may(
    stripe_fake, billing_ctx, action, max_amount, actionable
):
    ids = Ids()
    paid_invoice(ids)
    charge_known_to(stripe_fake, ids)
    event = warning(ids)
    event["data"]["object"]["actionable"] = actionable

    assert process(event, ctx=policy(billing_ctx, action, max_amount)) == "processed"

    assert stripe_fake.forms("POST", "/v1/refunds") == []
    assert ledger(ids.customer)[-1] == ("fraud_warning_hold", ids.warning, -PRO)


def test_a_lost_dispute_cancels_under_its_own_key(stripe_fake, billing_ctx):
    ids = known_customer(Ids())
    process_ok(stripe_event("customer.subscription.created", ids, created=T0))
    process_ok(stripe_event("invoice.paid", ids, api_version="2022-11-15"))
    stripe_fake.subscriptions[ids.subscription] = stripe_event(
        "customer.subscription.created", ids
    )["data"]["object"]
    settings = billing_ctx.settings.model_copy(
        update={"dispute_lost_action": "cancel_subscription"}
    )
    process_ok(dispute_event("charge.dispute.created", ids, created=T0 + 1))

    closed = dispute_event("charge.dispute.closed", ids, created=T0 + 2, status="lost")
    assert process(closed, ctx=replace(billing_ctx, settings=settings)) == "processed"

    assert stripe_fake.idempotency_keys(f"/v1/subscriptions/{ids.subscription}") == [
        f"dispute-lost:{ids.dispute}"
    ]
