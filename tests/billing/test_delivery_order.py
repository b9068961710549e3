"""Issue 20's delivery orders: each story ends with the balance (and state) of its natural
order, whichever order Stripe delivers its events in. Each of these failed before the ledger
was settled per payment (`billing.settlement`)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from billing.replay import mark_for_replay
from db.session import transaction
from tasks.events import processing
from tests.support.events import store_directly, stored
from tests.support.stripe_events import (
    API_VERSIONS,
    CHANGED_AT,
    CREDITS,
    NEXT_PERIOD_END,
    PERIOD_END,
    PERIOD_START,
    PRICES,
    Ids,
    account,
    balance,
    billing_context,
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


def starter_period(version: str = V) -> Ids:
    ids = known_customer(Ids(price=STARTER))
    process_ok(stripe_event("customer.subscription.created", ids, api_version=version, created=NOW))
    process_ok(stripe_event("invoice.paid", ids, api_version=version, created=NOW))
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


def renewal_on(ids: Ids, price: str, version: str = V) -> tuple[dict, dict, dict]:
    """The next period's `customer.subscription.updated` moving the renewal to `price` (the
    change reset the billing cycle), its proration paid on an invoice of its own, and the
    new period's `invoice.paid` billing `price`, in that API version's shape."""
    changed = plan_changed(
        ids, old_price=STARTER, new_price=price, api_version=version, created=NOW + 10
    )
    data = changed["data"]
    subscription = data["object"]
    new_period = {"current_period_start": PERIOD_END, "current_period_end": NEXT_PERIOD_END}
    if "current_period_start" in subscription:
        subscription.update(new_period)
        data["previous_attributes"].update(
            current_period_start=PERIOD_START, current_period_end=PERIOD_END
        )
    for item in subscription["items"]["data"]:  # since 2025-03-31.basil the items' own
        if "current_period_start" in item:
            item.update(new_period)
    proration = proration_invoice(
        ids.next_invoice(), old_price=STARTER, new_price=price, api_version=version, created=NOW + 9
    )
    for line in proration["data"]["object"]["lines"]["data"]:
        line["period"] = {"start": PERIOD_END, "end": NEXT_PERIOD_END}
    renewal = stripe_event(
        "invoice.paid",
        replace(ids.next_invoice(), price=price),
        api_version=version,
        created=NOW + 10,
    )
    invoice = renewal["data"]["object"]
    invoice["period_start"] = PERIOD_END
    if version != API_VERSIONS[0]:  # the oldest shape has no billing reason
        invoice["billing_reason"] = "subscription_cycle"
    invoice["lines"]["data"][0]["period"] = {"start": PERIOD_END, "end": NEXT_PERIOD_END}
    return changed, proration, renewal


@pytest.mark.parametrize("version", API_VERSIONS)
def test_5_a_change_that_starts_the_next_period_grants_nothing_before_its_invoice(version):
    ids = starter_period(version)
    for event in renewal_on(ids, PRO, version):
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


# --- What the first closing note left open ---------------------------------------------------


def pro_period() -> Ids:
    ids = known_customer(Ids(price=PRO))
    process_ok(stripe_event("customer.subscription.created", ids, api_version=V, created=NOW))
    process_ok(stripe_event("invoice.paid", ids, api_version=V, created=NOW))
    return ids


@pytest.mark.parametrize("taken_by", ["refund", "lost dispute"])
@pytest.mark.parametrize("order", ["natural", "downgrade before the refund", "refund first"])
def test_a_refunded_upgrade_then_a_downgrade_take_the_top_up_back_once(taken_by, order):
    """The proration's payment refunded (or charged back): the downgrade that follows has
    nothing of the top-up left to take back."""
    ids = pro_period()
    paid_by = ids.next_invoice()
    back_at = CHANGED_AT + 12 * 3600
    if taken_by == "refund":
        taking = [refund(paid_by, amount=1000, refunded=1000, created=CHANGED_AT + 60)]
    else:
        taking = [
            dispute(
                "charge.dispute.created",
                paid_by,
                created=CHANGED_AT + 60,
                status="needs_response",
                amount=1000,
            ),
            dispute(
                "charge.dispute.closed", paid_by, created=back_at + 60, status="lost", amount=1000
            ),
        ]
    up = plan_changed(ids, old_price=PRO, new_price=TEAM, api_version=V, created=CHANGED_AT)
    paid = proration_invoice(paid_by, old_price=PRO, new_price=TEAM, api_version=V)
    down = plan_changed(ids, old_price=TEAM, new_price=PRO, api_version=V, created=back_at)
    sequence = {
        "natural": [up, paid, *taking, down],
        "downgrade before the refund": [up, paid, down, *taking],
        "refund first": [*taking, down, up, paid],
    }[order]
    for event in sequence:
        process_ok(event)

    # Top-up granted and taken back with its payment; the downgrade takes nothing more.
    assert balance(ids.customer) == CREDITS["pro"]  # was pro - the downgrade's share


def test_a_late_checkout_after_a_downgrade_grants_what_the_first_invoice_billed():
    """The downgrade's state was stored first, so the subscription's first stored price is
    starter; the first invoice billed pro."""
    ids = known_customer(Ids(price=PRO))
    process_ok(plan_changed(ids, old_price=PRO, new_price=STARTER, api_version=V, created=NOW + 5))
    process_ok(stripe_event("checkout.session.completed", ids, api_version=V, created=NOW + 1))
    process_ok(stripe_event("customer.subscription.created", ids, api_version=V, created=NOW))
    process_ok(stripe_event("invoice.paid", ids, api_version=V, created=NOW))

    assert balance(ids.customer) == CREDITS["pro"]  # was 1,000: starter, the first stored
    assert [(kind, amount) for kind, _, amount in ledger(ids.customer)] == [
        ("plan_credits", CREDITS["pro"])
    ]


@pytest.mark.parametrize("order", ["natural", "reversed"])
def test_up_down_and_up_again_in_one_period_each_apply_once(order):
    ids = pro_period()
    t1, t2, t3 = CHANGED_AT, CHANGED_AT + 86_400, CHANGED_AT + 2 * 86_400
    first, second = ids.next_invoice(), ids.next_invoice()
    events = [
        plan_changed(ids, old_price=PRO, new_price=TEAM, api_version=V, created=t1),
        proration_invoice(first, old_price=PRO, new_price=TEAM, api_version=V, changed_at=t1),
        plan_changed(ids, old_price=TEAM, new_price=PRO, api_version=V, created=t2),
        plan_changed(ids, old_price=PRO, new_price=TEAM, api_version=V, created=t3),
        proration_invoice(second, old_price=PRO, new_price=TEAM, api_version=V, changed_at=t3),
    ]
    if order == "reversed":
        events.reverse()
    for event in events + [{**e, "id": e["id"] + "_again"} for e in events]:
        process_ok(event)

    difference = CREDITS["team"] - CREDITS["pro"]
    up_1, up_2 = prorated(difference, changed_at=t1), prorated(difference, changed_at=t3)
    down = prorated(difference, changed_at=t2)
    assert balance(ids.customer) == CREDITS["pro"] + up_1 - down + up_2  # was without up_2
    by_kind: dict[str, list[int]] = {}
    for kind, _, amount in ledger(ids.customer):
        by_kind.setdefault(kind, []).append(amount)
    assert sorted(by_kind["upgrade_credits"]) == sorted([up_1, up_2])  # each up its own entry
    assert sum(by_kind["downgrade_credits"]) == -down


@pytest.mark.parametrize("order", ["natural", "reversed"])
def test_down_up_and_down_again_take_back_only_the_top_up_once(order):
    """Two downgrades, each under its own key, take back together at most the period's one
    top-up (never the period's own invoice): the first takes all of it, the second nothing."""
    ids = pro_period()
    t1, t2, t3 = CHANGED_AT, CHANGED_AT + 86_400, CHANGED_AT + 2 * 86_400
    events = [
        plan_changed(ids, old_price=PRO, new_price=STARTER, api_version=V, created=t1),
        plan_changed(ids, old_price=STARTER, new_price=PRO, api_version=V, created=t2),
        proration_invoice(
            ids.next_invoice(), old_price=STARTER, new_price=PRO, api_version=V, changed_at=t2
        ),
        plan_changed(ids, old_price=PRO, new_price=STARTER, api_version=V, created=t3),
    ]
    if order == "reversed":
        events.reverse()
    for event in events + [{**e, "id": e["id"] + "_again"} for e in events]:
        process_ok(event)

    up = prorated(CREDITS["pro"] - CREDITS["starter"], changed_at=t2)
    assert balance(ids.customer) == CREDITS["pro"]
    by_change: dict[str, int] = {}
    for kind, source, amount in ledger(ids.customer):
        if kind == "downgrade_credits":
            change = source.split("#")[0].rsplit(":", 1)[1]
            by_change[change] = by_change.get(change, 0) + amount
    assert by_change.get(str(t1)) == -up  # the first change's, whatever the order
    assert by_change.get(str(t3), 0) == 0


def test_several_disputes_of_one_charge_each_hold_their_own_share():
    ids = known_customer(Ids())
    process_ok(stripe_event("invoice.paid", ids, api_version=V, created=NOW))
    other = replace(ids, dispute=Ids().dispute)
    process_ok(refund(ids, amount=2900, refunded=725, created=NOW + 10))
    for disputed in (ids, other):
        process_ok(
            dispute(
                "charge.dispute.created",
                disputed,
                created=NOW + 100,
                status="needs_response",
                amount=1450,
            )
        )
    # A quarter refunded, two disputes of a half each: never more than the three quarters.
    assert balance(ids.customer) == 0
    held: dict[str, int] = {}
    for kind, source, amount in ledger(ids.customer):
        if kind in ("dispute_hold", "dispute_release"):
            held[source.split("#")[0]] = held.get(source.split("#")[0], 0) + amount
    assert sum(held.values()) == -(CREDITS["pro"] - CREDITS["pro"] // 4)
    assert set(held) == {ids.dispute, other.dispute}  # each under its own id

    process_ok(dispute("charge.dispute.closed", ids, created=NOW + 200, status="won", amount=1450))

    # The other one still holds its own half (was: all, for whichever dispute came last).
    assert balance(ids.customer) == CREDITS["pro"] // 2 - CREDITS["pro"] // 4


def replay(event: dict) -> None:
    """What `billing replay` and the admin API do: the stored row back to the queue, then the
    task's claim and transaction (as `process` applies a new one)."""
    with transaction() as session:
        row = mark_for_replay(session, stripe_event_id=event["id"], live=False)
        assert row is not None
        row_id = row.id
    with transaction() as session:
        claim = processing.claim(session, row_id=row_id)
    assert claim is not None
    processing.apply(claim, ctx=billing_context())
    found = stored(event["id"])
    assert found is not None and found.status == "processed"


def test_a_replayed_event_settles_like_any_other():
    """A refund whose first attempt failed is replayed after what followed it (the invoice and
    a chargeback of the rest): the same balance as the natural order."""
    ids = known_customer(Ids())
    half = refund(ids, amount=2900, refunded=1450, created=NOW + 10)
    row_id = store_directly(half)
    with transaction() as session:
        claim = processing.claim(session, row_id=row_id)
    assert claim is not None
    processing.mark_failed(row_id=row_id, error=ConnectionError("the database went away"))
    process_ok(stripe_event("invoice.paid", ids, api_version=V, created=NOW))
    process_ok(
        dispute(
            "charge.dispute.created", ids, created=NOW + 100, status="needs_response", amount=1450
        )
    )
    assert balance(ids.customer) == CREDITS["pro"] // 2  # the chargeback holds its own half

    replay(half)

    assert balance(ids.customer) == 0
    assert sorted((kind, amount) for kind, _, amount in ledger(ids.customer)) == [
        ("dispute_hold", -(CREDITS["pro"] // 2)),
        ("plan_credits", CREDITS["pro"]),
        ("refund", -(CREDITS["pro"] // 2)),
    ]
