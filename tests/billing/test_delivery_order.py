"""Issue 20's delivery orders: each story ends with the balance (and state) of its natural
order, whichever order Stripe delivers its events in. Each of these failed before the ledger
was settled per payment (`billing.settlement`)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.support.stripe_events import (
    CHANGED_AT,
    CREDITS,
    NEXT_PERIOD_END,
    PERIOD_END,
    PERIOD_START,
    PRICES,
    Ids,
    account,
    balance,
    known_customer,
    ledger,
    plan_changed,
    process_ok,
    prorated,
    proration_invoice,
    stripe_event,
    subscription,
)

V = "2022-11-15"  # charges and invoices name each other: no Stripe lookups needed
NOW = 1_800_000_000
STARTER, PRO = PRICES["starter"], PRICES["pro"]
UPGRADE = prorated(CREDITS["pro"] - CREDITS["starter"])


def refund(ids: Ids, *, amount: int, refunded: int, created: int | None = None) -> dict:
    event = stripe_event("charge.refunded", ids, api_version=V, created=created)
    event["data"]["object"].update(
        amount=amount, amount_refunded=refunded, refunded=refunded == amount
    )
    return event


def dispute(event_type: str, ids: Ids, *, created: int, status: str, amount: int) -> dict:
    event = stripe_event(event_type, ids, api_version=V, created=created)
    event["data"]["object"].update(status=status, amount=amount)
    return event


def test_1_a_dispute_applied_before_the_earlier_partial_refund_takes_only_the_rest():
    ids = known_customer(Ids())
    process_ok(stripe_event("invoice.paid", ids, api_version=V, created=NOW))
    half = refund(ids, amount=2900, refunded=1450, created=NOW)
    opened = dispute(
        "charge.dispute.created", ids, created=NOW + 100, status="needs_response", amount=1450
    )
    lost = dispute("charge.dispute.closed", ids, created=NOW + 200, status="lost", amount=1450)
    for event in (opened, half, lost):
        process_ok(event)

    assert balance(ids.customer) == 0  # was -2,500: the hold ignored the refund that followed


def test_2_a_full_refund_before_the_invoice_it_refunds_takes_the_grant_back():
    ids = known_customer(Ids())
    process_ok(refund(ids, amount=2900, refunded=2900, created=NOW))
    process_ok(stripe_event("invoice.paid", ids, api_version=V, created=NOW))

    assert balance(ids.customer) == 0  # was 5,000: the refund found nothing and was done


def starter_period() -> Ids:
    ids = known_customer(Ids(price=STARTER))
    process_ok(stripe_event("customer.subscription.created", ids, api_version=V, created=NOW))
    process_ok(stripe_event("invoice.paid", ids, api_version=V, created=NOW))
    return ids


def test_3_a_refund_of_the_proration_before_the_upgrade_takes_the_top_up_back():
    ids = starter_period()
    paid_by = ids.next_invoice()
    process_ok(refund(paid_by, amount=1000, refunded=1000, created=NOW + 2))
    process_ok(plan_changed(ids, old_price=STARTER, new_price=PRO, api_version=V, created=NOW + 1))
    process_ok(proration_invoice(paid_by, old_price=STARTER, new_price=PRO, api_version=V))

    assert balance(ids.customer) == CREDITS["starter"]  # was 5,000: the top-up was kept


def test_3_a_lost_dispute_of_the_proration_before_the_upgrade_holds_the_top_up():
    ids = starter_period()
    paid_by = ids.next_invoice()
    process_ok(
        dispute(
            "charge.dispute.created", paid_by, created=NOW + 2, status="needs_response", amount=1000
        )
    )
    process_ok(
        dispute("charge.dispute.closed", paid_by, created=NOW + 3, status="lost", amount=1000)
    )
    process_ok(proration_invoice(paid_by, old_price=STARTER, new_price=PRO, api_version=V))
    process_ok(plan_changed(ids, old_price=STARTER, new_price=PRO, api_version=V, created=NOW + 1))

    assert balance(ids.customer) == CREDITS["starter"]


def test_4_a_checkout_delivered_after_an_upgrade_grants_the_plan_it_billed():
    ids = known_customer(Ids(price=STARTER))
    paid_by = ids.next_invoice()
    process_ok(stripe_event("customer.subscription.created", ids, api_version=V, created=NOW))
    process_ok(plan_changed(ids, old_price=STARTER, new_price=PRO, api_version=V, created=NOW + 1))
    process_ok(proration_invoice(paid_by, old_price=STARTER, new_price=PRO, api_version=V))
    process_ok(stripe_event("checkout.session.completed", ids, api_version=V, created=NOW + 2))
    process_ok(stripe_event("invoice.paid", ids, api_version=V, created=NOW))

    # The first invoice billed starter (1,000), the upgrade's proration pro's difference.
    assert balance(ids.customer) == CREDITS["starter"] + UPGRADE  # was 9,000 (unprorated)


def test_7_an_incomplete_state_of_the_same_second_never_undoes_active():
    ids = known_customer(Ids())
    updated = stripe_event("customer.subscription.updated", ids, api_version=V, created=NOW)
    updated["data"]["object"]["status"] = "active"
    updated["data"]["previous_attributes"] = {"status": "incomplete"}
    created = stripe_event("customer.subscription.created", ids, api_version=V, created=NOW)
    created["data"]["object"]["status"] = "incomplete"
    process_ok(updated)
    process_ok(created)

    stored = subscription(ids.subscription)
    assert stored is not None and stored.status == "active"  # was incomplete
    found = account(ids.customer)
    assert found is not None and found.plan == "pro"  # was free


def renewal_on(ids: Ids, price: str) -> tuple[dict, dict, dict]:
    """The next period's `customer.subscription.updated` moving the renewal to `price` (the
    change reset the billing cycle), its proration paid on an invoice of its own, and the
    new period's `invoice.paid` billing `price`."""
    changed = plan_changed(ids, old_price=STARTER, new_price=price, api_version=V, created=NOW + 10)
    data = changed["data"]
    data["object"].update(current_period_start=PERIOD_END, current_period_end=NEXT_PERIOD_END)
    data["previous_attributes"].update(
        current_period_start=PERIOD_START, current_period_end=PERIOD_END
    )
    proration = proration_invoice(
        ids.next_invoice(), old_price=STARTER, new_price=price, api_version=V, created=NOW + 10
    )
    for line in proration["data"]["object"]["lines"]["data"]:
        line["period"] = {"start": PERIOD_END, "end": NEXT_PERIOD_END}
    renewal = stripe_event(
        "invoice.paid", replace(ids.next_invoice(), price=price), api_version=V, created=NOW + 10
    )
    invoice = renewal["data"]["object"]
    invoice.update(billing_reason="subscription_cycle", period_start=PERIOD_END)
    invoice["lines"]["data"][0]["period"] = {"start": PERIOD_END, "end": NEXT_PERIOD_END}
    return changed, proration, renewal


def test_5_a_change_that_starts_the_next_period_grants_nothing_before_its_invoice():
    ids = starter_period()
    for event in renewal_on(ids, PRO):
        process_ok(event)

    # The period's invoice billed pro: its own line price decides the period's credits.
    assert balance(ids.customer) == CREDITS["starter"] + CREDITS["pro"]  # was 10,000


TEAM = PRICES["team"]


@pytest.mark.parametrize("order", ["natural", "downgrade first", "invoice last"])
def test_6_an_upgrade_and_a_downgrade_on_the_same_day_keep_only_what_was_paid_for(order):
    ids = known_customer(Ids(price=PRO))
    process_ok(stripe_event("customer.subscription.created", ids, api_version=V, created=NOW))
    process_ok(stripe_event("invoice.paid", ids, api_version=V, created=NOW))
    back_at = CHANGED_AT + 12 * 3600  # the same day, 12 hours later
    events = {
        "up": plan_changed(ids, old_price=PRO, new_price=TEAM, api_version=V, created=CHANGED_AT),
        "paid": proration_invoice(ids.next_invoice(), old_price=PRO, new_price=TEAM, api_version=V),
        "down": plan_changed(ids, old_price=TEAM, new_price=PRO, api_version=V, created=back_at),
    }
    sequence = {
        "natural": ["up", "paid", "down"],
        "downgrade first": ["down", "up", "paid"],
        "invoice last": ["up", "down", "paid"],
    }[order]
    for name in sequence:
        process_ok(events[name])
    for name in sequence:
        process_ok({**events[name], "id": events[name]["id"] + "_again"})

    difference = CREDITS["team"] - CREDITS["pro"]
    top_up = prorated(difference)
    take_back = difference * (PERIOD_END - back_at) // (PERIOD_END - PERIOD_START)
    entries = sorted((kind, amount) for kind, _, amount in ledger(ids.customer))
    assert entries == [
        ("downgrade_credits", -take_back),
        ("plan_credits", CREDITS["pro"]),
        ("upgrade_credits", top_up),
    ]
    assert balance(ids.customer) == CREDITS["pro"] + top_up - take_back  # was 20,000
