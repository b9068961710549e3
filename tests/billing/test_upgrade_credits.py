"""Upgrade credits follow the money: an upgrade is granted once the invoice that pays its
proration is paid (or owes nothing), whichever of the two events comes first, and a refund or
a dispute of that payment takes the credits back."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import select

from db.models import Account, CreditEntry, CreditKind
from db.session import new_session
from tests.support.stripe_events import (
    API_VERSIONS,
    CREDITS,
    INVOICE_PAYMENT_LEFT_OUT,
    NEWEST,
    PRICES,
    Ids,
    balance,
    dispute_event,
    emails,
    known_customer,
    ledger,
    plan_changed,
    process_ok,
    prorated,
    proration_invoice,
    stripe_event,
)
from tests.support.stripe_fake import StripeFake

NOW = 1_800_000_000
STARTER, PRO, TEAM = PRICES["starter"], PRICES["pro"], PRICES["team"]
UPGRADE = prorated(CREDITS["pro"] - CREDITS["starter"])  # the fixtures' change time


def starter_period(api_version: str = NEWEST) -> Ids:
    """A customer on the starter plan whose period's invoice granted its credits."""
    ids = known_customer(Ids(price=STARTER))
    process_ok(
        stripe_event("customer.subscription.created", ids, api_version=api_version, created=NOW)
    )
    process_ok(stripe_event("invoice.paid", ids, api_version=api_version, created=NOW))
    assert balance(ids.customer) == CREDITS["starter"]
    return ids


def upgrade_grants(customer_id: str) -> list[CreditEntry]:
    with new_session() as session:
        return list(
            session.scalars(
                select(CreditEntry)
                .join(Account, Account.id == CreditEntry.account_id)
                .where(
                    Account.stripe_customer_id == customer_id,
                    CreditEntry.kind == CreditKind.UPGRADE_CREDITS,
                )
                .order_by(CreditEntry.id)
            )
        )


def again(event: dict) -> dict:
    """The same fact in another event (Stripe's retry of a lost delivery, or a twin event)."""
    return {**event, "id": event["id"] + "_again"}


def refund(ids: Ids, *, api_version: str, amount: int, refunded: int) -> dict:
    event = stripe_event("charge.refunded", ids, api_version=api_version)
    event["data"]["object"].update(
        amount=amount, amount_refunded=refunded, refunded=refunded == amount
    )
    return event


def stripe_knows_the_payment(fake: StripeFake, ids: Ids) -> None:
    """Since 2025-03-31.basil only Stripe's invoice payments say which invoice a payment paid."""
    fake.invoice_payments.append(
        {
            "id": ids.invoice_payment,
            "object": "invoice_payment",
            "invoice": ids.invoice,
            "payment": {"type": "payment_intent", "payment_intent": ids.payment_intent},
        }
    )


@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_an_upgrade_is_granted_when_its_proration_is_paid_and_only_once(api_version):
    ids = starter_period(api_version)
    paid_by = ids.next_invoice()  # the invoice of the upgrade's proration, and its payment
    change = plan_changed(
        ids, old_price=STARTER, new_price=PRO, api_version=api_version, created=NOW + 1
    )
    process_ok(change)
    declined = proration_invoice(
        paid_by,
        old_price=STARTER,
        new_price=PRO,
        api_version=api_version,
        event_type="invoice.payment_failed",
        paid=False,
        created=NOW + 1,
    )
    process_ok(declined)

    assert upgrade_grants(ids.customer) == []  # upgraded, not paid: nothing to spend yet
    assert balance(ids.customer) == CREDITS["starter"]
    (notice,) = emails(f"plan-changed:{ids.subscription}")
    assert (notice.context["direction"], notice.context["credits_granted"]) == ("upgrade", 0)

    paid = proration_invoice(
        paid_by, old_price=STARTER, new_price=PRO, api_version=api_version, created=NOW + 2
    )
    process_ok(paid)
    process_ok(again(paid))
    process_ok(
        {**again(paid), "id": paid["id"] + "_succeeded", "type": "invoice.payment_succeeded"}
    )
    process_ok(again(change))

    (grant,) = upgrade_grants(ids.customer)
    assert grant.amount == UPGRADE
    assert grant.source_id == f"{ids.subscription}:{PRO}:{1767225600}:{NOW + 1}"  # the change
    assert grant.stripe_invoice_id == paid_by.invoice
    assert grant.charge_id == (None if api_version in INVOICE_PAYMENT_LEFT_OUT else paid_by.charge)
    assert balance(ids.customer) == CREDITS["starter"] + UPGRADE
    (receipt,) = emails(f"receipt:{paid_by.invoice}")
    assert receipt.context["credits_granted"] == UPGRADE


@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_a_proration_paid_before_its_upgrade_arrives_is_granted_with_the_upgrade(api_version):
    ids = starter_period(api_version)
    paid_by = ids.next_invoice()
    paid = proration_invoice(
        paid_by, old_price=STARTER, new_price=PRO, api_version=api_version, created=NOW + 2
    )
    process_ok(paid)
    assert upgrade_grants(ids.customer) == []  # paid for what? not known yet

    change = plan_changed(
        ids, old_price=STARTER, new_price=PRO, api_version=api_version, created=NOW + 1
    )
    process_ok(change)
    process_ok(again(change))
    process_ok(again(paid))

    (grant,) = upgrade_grants(ids.customer)
    assert (grant.amount, grant.stripe_invoice_id) == (UPGRADE, paid_by.invoice)
    assert balance(ids.customer) == CREDITS["starter"] + UPGRADE
    (notice,) = emails(f"plan-changed:{ids.subscription}")
    assert notice.context["credits_granted"] == UPGRADE


@pytest.mark.parametrize("order", ["upgrade first", "invoice first"])
def test_an_upgrade_with_nothing_to_pay_is_granted(order):
    ids = starter_period()
    paid_by = ids.next_invoice()
    events = [
        plan_changed(ids, old_price=STARTER, new_price=PRO, created=NOW + 1),
        # The customer's balance covered the proration: nothing due, no payment, still paid.
        proration_invoice(
            paid_by, old_price=STARTER, new_price=PRO, amount_due=0, api_version="2022-11-15"
        ),
    ]
    for event in events if order == "upgrade first" else events[::-1]:
        process_ok(event)

    (grant,) = upgrade_grants(ids.customer)
    assert (grant.amount, grant.stripe_invoice_id) == (UPGRADE, paid_by.invoice)
    assert (grant.payment_intent_id, grant.charge_id) == (None, None)


@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_a_refund_of_the_proration_payment_takes_the_upgrade_back_once(api_version, stripe_fake):
    ids = starter_period(api_version)
    paid_by = ids.next_invoice()
    process_ok(
        plan_changed(ids, old_price=STARTER, new_price=PRO, api_version=api_version, created=NOW)
    )
    # 2000 for the time left on pro, less 1000 for the unused starter: 1000 charged.
    process_ok(
        proration_invoice(paid_by, old_price=STARTER, new_price=PRO, api_version=api_version)
    )
    stripe_knows_the_payment(stripe_fake, paid_by)
    assert balance(ids.customer) == CREDITS["starter"] + UPGRADE

    half = refund(paid_by, api_version=api_version, amount=1000, refunded=500)
    process_ok(half)
    process_ok(again(half))
    assert balance(ids.customer) == CREDITS["starter"] + UPGRADE - UPGRADE // 2
    whole = refund(paid_by, api_version=api_version, amount=1000, refunded=1000)
    process_ok(whole)
    process_ok(again(whole))

    refunds = [entry for entry in ledger(ids.customer) if entry[0] == "refund"]
    assert refunds == [
        ("refund", f"{paid_by.charge}:500", -(UPGRADE // 2)),
        ("refund", f"{paid_by.charge}:1000", -(UPGRADE - UPGRADE // 2)),
    ]
    assert balance(ids.customer) == CREDITS["starter"]  # the period's own credits stay


def test_a_renewal_carrying_the_proration_pays_for_the_upgrade_and_a_refund_takes_both():
    """`create_prorations` (the Customer Portal's default): the proration waits for the next
    renewal, which pays the new period and the upgrade of the last one with one charge."""
    api_version = "2022-11-15"
    ids = starter_period(api_version)
    renewal = ids.next_invoice()
    process_ok(
        plan_changed(ids, old_price=STARTER, new_price=PRO, api_version=api_version, created=NOW)
    )
    assert upgrade_grants(ids.customer) == []

    paid = proration_invoice(
        renewal, old_price=STARTER, new_price=PRO, api_version=api_version, renewal=True
    )
    process_ok(paid)

    assert [(kind, source, amount) for kind, source, amount in ledger(ids.customer)][1:] == [
        ("plan_credits", renewal.invoice, CREDITS["pro"]),
        ("upgrade_credits", f"{ids.subscription}:{PRO}:1767225600:{NOW}", UPGRADE),
    ]
    (receipt,) = emails(f"receipt:{renewal.invoice}")
    assert receipt.context["credits_granted"] == CREDITS["pro"] + UPGRADE

    total = paid["data"]["object"]["amount_paid"]
    process_ok(refund(renewal, api_version=api_version, amount=total, refunded=total))

    assert ledger(ids.customer)[-1] == (
        "refund",
        f"{renewal.charge}:{total}",
        -(CREDITS["pro"] + UPGRADE),
    )
    assert balance(ids.customer) == CREDITS["starter"]


def test_a_chargeback_of_the_proration_payment_holds_the_upgrade_back():
    api_version = "2022-11-15"
    ids = starter_period(api_version)
    paid_by = ids.next_invoice()
    process_ok(
        plan_changed(ids, old_price=STARTER, new_price=PRO, api_version=api_version, created=NOW)
    )
    process_ok(
        proration_invoice(paid_by, old_price=STARTER, new_price=PRO, api_version=api_version)
    )

    process_ok(dispute_event("charge.dispute.created", paid_by, api_version=api_version))

    assert ledger(ids.customer)[-1] == ("dispute_hold", paid_by.dispute, -UPGRADE)
    assert balance(ids.customer) == CREDITS["starter"]


def test_an_unpaid_step_counts_for_nothing_until_it_is_paid():
    ids = starter_period()
    to_pro, to_team = ids.next_invoice(), ids.next_invoice()
    process_ok(plan_changed(ids, old_price=STARTER, new_price=PRO, created=NOW + 1))
    process_ok(plan_changed(ids, old_price=PRO, new_price=TEAM, created=NOW + 2))
    process_ok(
        proration_invoice(
            to_pro,
            old_price=STARTER,
            new_price=PRO,
            event_type="invoice.payment_failed",
            paid=False,
        )
    )
    # Team's invoice pays for team only: the pro step's proration is still owed.
    process_ok(proration_invoice(to_team, old_price=PRO, new_price=TEAM))

    assert [(g.source_id, g.amount) for g in upgrade_grants(ids.customer)] == [
        (
            f"{ids.subscription}:{TEAM}:1767225600:{NOW + 2}",
            prorated(CREDITS["team"] - CREDITS["pro"]),
        )
    ]
    # Paid late, the pro step adds its own prorated difference: each step pays for its own.
    process_ok(proration_invoice(to_pro, old_price=STARTER, new_price=PRO))
    assert balance(ids.customer) == CREDITS["starter"] + UPGRADE + prorated(
        CREDITS["team"] - CREDITS["pro"]
    )


def test_a_proration_of_another_period_pays_for_nothing_here():
    ids = starter_period()
    process_ok(plan_changed(ids, old_price=STARTER, new_price=PRO, created=NOW + 1))
    # The same subscription and price, a change in the period before: not this upgrade.
    earlier = proration_invoice(
        ids.next_invoice(), old_price=STARTER, new_price=PRO, changed_at=1765000000
    )
    for line in earlier["data"]["object"]["lines"]["data"]:
        line["period"]["end"] = 1767225600
    process_ok(earlier)

    assert upgrade_grants(ids.customer) == []


@pytest.mark.parametrize(
    "order",
    list(itertools.permutations(["period", "upgrade", "proration"])),
    ids="-".join,
)
def test_any_order_ends_with_the_period_and_the_upgrade_granted_once(order):
    ids = known_customer(Ids(price=STARTER))
    process_ok(stripe_event("customer.subscription.created", ids, created=NOW))
    events = {
        "period": stripe_event("invoice.paid", ids, created=NOW),
        "upgrade": plan_changed(ids, old_price=STARTER, new_price=PRO, created=NOW + 1),
        "proration": proration_invoice(
            ids.next_invoice(), old_price=STARTER, new_price=PRO, created=NOW + 2
        ),
    }
    for name in order:
        process_ok(events[name])
    for name in order:
        process_ok(again(events[name]))

    assert sorted(kind for kind, _, _ in ledger(ids.customer)) == [
        "plan_credits",
        "upgrade_credits",
    ]
    assert balance(ids.customer) == CREDITS["starter"] + UPGRADE
