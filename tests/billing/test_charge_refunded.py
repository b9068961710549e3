"""`charge.refunded`: the credits the payment granted go back, in proportion, once per amount."""

from __future__ import annotations

import pytest

from tests.support.stripe_events import (
    API_VERSIONS,
    CREDITS,
    Ids,
    balance,
    known_customer,
    ledger,
    process_ok,
    stripe_event,
)


def refund_event(ids: Ids, api_version: str, refunded: int) -> dict:
    event = stripe_event("charge.refunded", ids, api_version=api_version)
    event["data"]["object"].update(amount=2900, amount_refunded=refunded, refunded=refunded == 2900)
    return event


def test_a_full_refund_of_a_subscription_payment_takes_its_credits_back_once():
    ids = Ids()
    process_ok(stripe_event("invoice.paid", ids, api_version="2022-11-15"))
    refund = refund_event(ids, "2022-11-15", 2900)
    process_ok(refund)
    process_ok({**refund, "id": refund["id"] + "_again"})

    assert balance(ids.customer) == 0
    assert ledger(ids.customer)[-1] == ("refund", f"{ids.charge}:2900", -CREDITS["pro"])


def test_the_newest_shape_asks_stripe_which_invoice_the_payment_paid(stripe_fake):
    """Since 2025-03-31.basil neither the invoice nor the charge in a webhook names the other."""
    api_version = "2025-09-30.clover"
    ids = Ids()
    process_ok(stripe_event("invoice.paid", ids, api_version=api_version))
    stripe_fake.invoice_payments.append(
        {
            "id": ids.invoice_payment,
            "object": "invoice_payment",
            "invoice": ids.invoice,
            "payment": {"type": "payment_intent", "payment_intent": ids.payment_intent},
        }
    )
    refund = refund_event(ids, api_version, 2900)
    process_ok(refund)
    process_ok({**refund, "id": refund["id"] + "_again"})

    assert balance(ids.customer) == 0
    assert ledger(ids.customer)[-1] == ("refund", f"{ids.charge}:2900", -CREDITS["pro"])


def test_the_oldest_shape_finds_the_grant_through_the_charges_invoice():
    ids = Ids()
    process_ok(stripe_event("invoice.payment_succeeded", ids, api_version="2017-08-15"))
    process_ok(refund_event(ids, "2017-08-15", 2900))

    assert balance(ids.customer) == 0


@pytest.mark.parametrize("order", ["in-order", "late-partial"])
def test_partial_refunds_add_up_to_the_whole_grant(order):
    ids = Ids(pack="small")  # 500 credits for 2900
    process_ok(stripe_event("checkout.session.completed", ids, variant="payment"))
    amounts = [1000, 2900] if order == "in-order" else [2900, 1000]
    for refunded in amounts:
        process_ok(refund_event(ids, API_VERSIONS[-1], refunded))

    assert balance(ids.customer) == 0
    assert sum(1 for kind, _, _ in ledger(ids.customer) if kind == "refund") == (
        2 if order == "in-order" else 1
    )


def test_a_refund_of_a_payment_that_granted_nothing_changes_nothing():
    ids = Ids()
    process_ok(refund_event(ids, API_VERSIONS[-1], 2900))

    assert ledger(ids.customer) == []


OLDEST = API_VERSIONS[0]


@pytest.mark.parametrize("fact", ["charge.refunded", "charge.dispute.created"])
@pytest.mark.parametrize("order", ["pack first", "pack last"])
def test_a_2017_pack_charge_without_its_payment_intent_is_found_by_the_charge(
    stripe_fake, fact, order
):
    """Charges of 2017-08-15 name no payment intent: the pack learns its charge from Stripe
    when granted, so that the charge's refund or dispute finds it, in either order."""
    ids = known_customer(Ids(pack="small"))
    stripe_fake.payment_intents[ids.payment_intent] = {
        "id": ids.payment_intent,
        "object": "payment_intent",
        "latest_charge": ids.charge,
    }
    pack = stripe_event("checkout.session.completed", ids, api_version=OLDEST, variant="payment")
    taking = stripe_event(fact, ids, api_version=OLDEST)
    charge = taking["data"]["object"]
    if fact == "charge.refunded":
        charge.update(invoice=None, amount=2900, amount_refunded=2900)
    assert charge.get("payment_intent") is None
    for event in [pack, taking] if order == "pack first" else [taking, pack]:
        process_ok(event)

    assert balance(ids.customer) == 0  # was 500: nothing found the pack
