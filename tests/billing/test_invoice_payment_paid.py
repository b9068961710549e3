"""`invoice_payment.paid`: an invoice paid in several parts grants its period's credits once,
when the parts add up to what it asked, whatever order the parts and the invoice come in,
and never twice together with `invoice.paid`."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tests.support.stripe_events import (
    API_VERSIONS,
    CREDITS,
    Ids,
    balance,
    known_customer,
    ledger,
    process_ok,
    redelivered,
    stripe_event,
)

NOW = 1_800_000_000


def part(ids: Ids, api_version: str, *, number: int, amount: int) -> dict[str, Any]:
    event = stripe_event("invoice_payment.paid", ids, api_version=api_version, created=NOW + number)
    payment = event["data"]["object"]
    payment.update(
        id=f"{ids.invoice_payment}_{number}", amount_paid=amount, amount_requested=amount
    )
    payment["payment"]["payment_intent"] = f"{ids.payment_intent}_{number}"
    payment["status_transitions"]["paid_at"] = NOW + number
    payment["is_default"] = False
    return event


@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_an_invoice_paid_in_two_parts_grants_once_when_paid_in_full(api_version):
    ids = known_customer(Ids())
    process_ok(stripe_event("invoice.finalized", ids, api_version=api_version, created=NOW))
    first = part(ids, api_version, number=1, amount=1000)
    process_ok(first)
    process_ok(redelivered(first))
    assert balance(ids.customer) == 0  # 1000 of 2900 paid: nothing yet

    second = part(ids, api_version, number=2, amount=1900)
    process_ok(second)
    process_ok(redelivered(second))
    process_ok(stripe_event("invoice.paid", ids, api_version=api_version, created=NOW + 3))

    assert ledger(ids.customer) == [("plan_credits", ids.invoice, CREDITS["pro"])]


ORDERS = list(itertools.permutations(["finalized", "part-1", "part-2"]))


@pytest.mark.parametrize("order", ORDERS, ids="-".join)
def test_parts_that_come_before_their_invoice_wait_for_it(order):
    ids = known_customer(Ids())
    events = {
        "finalized": stripe_event("invoice.finalized", ids, created=NOW),
        "part-1": part(ids, API_VERSIONS[-1], number=1, amount=900),
        "part-2": part(ids, API_VERSIONS[-1], number=2, amount=2000),
    }
    for name in order:
        process_ok(events[name])

    assert ledger(ids.customer) == [("plan_credits", ids.invoice, CREDITS["pro"])]


def test_a_single_payment_of_the_whole_invoice_grants_like_invoice_paid():
    ids = known_customer(Ids())
    process_ok(stripe_event("invoice.finalized", ids, created=NOW))
    process_ok(stripe_event("invoice_payment.paid", ids, created=NOW + 1))
    process_ok(stripe_event("invoice.payment_succeeded", ids, created=NOW + 2))

    (entry,) = ledger(ids.customer)
    assert entry == ("plan_credits", ids.invoice, CREDITS["pro"])


def test_a_part_of_an_invoice_never_seen_fetches_it_from_stripe(stripe_fake):
    ids = known_customer(Ids())
    invoice = stripe_event("invoice.finalized", ids)["data"]["object"]
    stripe_fake.invoices[ids.invoice] = invoice
    process_ok(stripe_event("invoice_payment.paid", ids, created=NOW))

    assert ("GET", f"/v1/invoices/{ids.invoice}") in [(m, p) for m, p, _ in stripe_fake.requests]
    assert ledger(ids.customer) == [("plan_credits", ids.invoice, CREDITS["pro"])]
