"""`credit_note.created` / `credit_note.voided`: a credit note takes back its share of what the
invoice's payment bought, once, whatever order it comes in with the invoice and the refund it
made; voiding gives back what it took. Each failed before credit notes were handled."""

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
from tests.support.stripe_fake import StripeFake

PRO = CREDITS["pro"]


def paid_invoice(ids: Ids, version: str, fake: StripeFake) -> dict:
    """The invoice's `invoice.paid`; in the newest shape only Stripe says what paid it."""
    fake.invoice_payments.append(
        {
            "id": ids.invoice_payment,
            "object": "invoice_payment",
            "invoice": ids.invoice,
            "payment": {"type": "payment_intent", "payment_intent": ids.payment_intent},
        }
    )
    return stripe_event("invoice.paid", ids, api_version=version)


def credit_note(ids: Ids, version: str, *, amount: int = 2900, refunded: bool = True) -> dict:
    """`credit_note.created` of `amount`: refunded (the fixture's refund, of all of it), or
    credited to the customer's balance."""
    if refunded:
        event = stripe_event("credit_note.created", ids, api_version=version)
        note = event["data"]["object"]
        if "refunds" in note:
            note["refunds"][0]["amount_refunded"] = amount
    else:
        event = stripe_event("credit_note.voided", ids, api_version=version)
        event["type"] = "credit_note.created"
        event["data"].pop("previous_attributes")
        note = event["data"]["object"]
        note.update(status="issued", voided_at=None)
    note["amount"] = amount
    return event


def voided(ids: Ids, version: str, *, amount: int) -> dict:
    event = stripe_event("credit_note.voided", ids, api_version=version)
    event["data"]["object"]["amount"] = amount
    return event


def refund(ids: Ids, version: str, *, refunded: int) -> dict:
    event = stripe_event("charge.refunded", ids, api_version=version)
    event["data"]["object"].update(amount=2900, amount_refunded=refunded, refunded=refunded == 2900)
    return event


@pytest.mark.parametrize("version", API_VERSIONS)
@pytest.mark.parametrize("order", ["invoice, note, refund", "refund, note, invoice", "note only"])
def test_a_refunding_credit_note_and_its_charge_refunded_take_back_once(
    stripe_fake, version, order
):
    ids = known_customer(Ids())
    events = {
        "invoice": paid_invoice(ids, version, stripe_fake),
        "note": credit_note(ids, version),
        "refund": refund(ids, version, refunded=2900),
    }
    names = ["invoice", "note"] if order == "note only" else order.split(", ")
    for name in names:
        process_ok(events[name])
    for name in names:  # every delivery again: nothing more
        process_ok({**events[name], "id": events[name]["id"] + "_again"})

    assert balance(ids.customer) == 0  # was 5,000 with the note alone: it was ignored
    assert sum(amount for kind, _, amount in ledger(ids.customer) if kind != "plan_credits") == (
        -PRO
    )


@pytest.mark.parametrize("version", API_VERSIONS)
def test_a_note_refunding_half_and_a_plain_refund_of_the_other_half_take_all(stripe_fake, version):
    """Two refunds of one charge: the note names one, the charge's total counts both."""
    ids = known_customer(Ids())
    process_ok(paid_invoice(ids, version, stripe_fake))
    process_ok(credit_note(ids, version, amount=1450))
    assert balance(ids.customer) == PRO // 2

    process_ok(refund(ids, version, refunded=2900))
    assert balance(ids.customer) == 0


@pytest.mark.parametrize("version", API_VERSIONS)
@pytest.mark.parametrize("order", ["natural", "void first", "before the invoice"])
def test_a_note_to_the_customers_balance_takes_back_and_its_voiding_gives_back(
    stripe_fake, version, order
):
    ids = known_customer(Ids())
    events = {
        "invoice": paid_invoice(ids, version, stripe_fake),
        "note": credit_note(ids, version, amount=1450, refunded=False),
        "void": voided(ids, version, amount=1450),
    }
    if order == "natural":
        process_ok(events["invoice"])
        process_ok(events["note"])
        assert balance(ids.customer) == PRO - PRO // 2  # was 5,000: the note was ignored
        process_ok(events["void"])
    elif order == "void first":
        for name in ("invoice", "void", "note"):
            process_ok(events[name])
    else:
        process_ok(events["note"])
        process_ok(events["invoice"])
        assert balance(ids.customer) == PRO - PRO // 2
        process_ok(events["void"])

    assert balance(ids.customer) == PRO
    notes = [source for kind, source, _ in ledger(ids.customer) if kind == "credit_note"]
    assert all(source.startswith(ids.credit_note) for source in notes)
    assert len(notes) == (0 if order == "void first" else 2)  # taken, then given back
