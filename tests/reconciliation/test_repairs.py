"""Drift that no webhook reported, made in localstripe with no webhook registered, and found
and repaired by a run through the handlers' own path."""

from __future__ import annotations

from tests.reconciliation.conftest import (
    items_of,
    new_customer,
    new_subscription,
    run_now,
    seed,
)
from tests.support.stripe_events import PRICES, account, emails, history, ledger
from tests.support.stripe_events import subscription as local_copy


def test_a_silent_cancel_at_period_end_is_repaired(localstripe, stripe_client):
    subscription = new_subscription(localstripe)
    seed(subscription)
    localstripe.client().v1.subscriptions.update(
        subscription["id"], params={"cancel_at_period_end": True}
    )

    report = run_now(stripe_client)

    assert report.status == "succeeded"
    item = items_of(report, subscription["id"])["cancel_at_period_end"]
    assert (item.kind, item.local_value, item.stripe_value, item.fixed) == (
        "drift",
        False,
        True,
        True,
    )
    copy = local_copy(subscription["id"])
    assert copy is not None and copy.cancel_at_period_end is True and copy.status == "active"
    last = history(subscription["id"])[-1]
    assert last.cause == "reconciliation"
    assert last.changes == {"cancel_at_period_end": [False, True]}


def test_a_silent_cancellation_is_repaired_and_told(localstripe, stripe_client):
    subscription = new_subscription(localstripe)
    seed(subscription)
    localstripe.cancel(subscription["id"])

    report = run_now(stripe_client)

    item = items_of(report, subscription["id"])["status"]
    assert (item.local_value, item.stripe_value, item.fixed) == ("active", "canceled", True)
    assert local_copy(subscription["id"]).status == "canceled"
    customer = account(subscription["customer"])
    assert customer is not None and customer.plan == "free"
    assert history(subscription["id"])[-1].cause == "reconciliation"
    # The email the lost `customer.subscription.deleted` would have sent, once.
    assert len(emails(f"subscription-canceled:{subscription['id']}")) == 1


def test_a_plan_change_is_repaired_and_its_upgrade_waits_for_payment(localstripe, stripe_client):
    # localstripe ignores `items[].price` on update, so the plan cannot be changed in the fake
    # itself. The drift is made on our side instead: the local copy records the starter plan
    # (as if the `customer.subscription.updated` to pro was lost), while Stripe says pro.
    subscription = new_subscription(localstripe, plan="pro")
    seed(subscription, price=PRICES["starter"])
    assert local_copy(subscription["id"]).plan == "starter"

    report = run_now(stripe_client)

    item = items_of(report, subscription["id"])["plan"]
    assert (item.local_value, item.stripe_value, item.fixed) == (
        PRICES["starter"],
        PRICES["pro"],
        True,
    )
    copy = local_copy(subscription["id"])
    assert (copy.plan, copy.price_id) == ("pro", PRICES["pro"])
    assert account(subscription["customer"]).plan == "pro"
    last = history(subscription["id"])[-1]
    assert last.cause == "reconciliation" and last.changes["plan"] == ["starter", "pro"]
    # The upgrade is recorded, but its credits follow only the payment of its proration
    # (an `invoice.paid` naming it): nothing in this story paid for it.
    upgrades = [
        entry for entry in ledger(subscription["customer"]) if entry[0] == "upgrade_credits"
    ]
    assert upgrades == []
    assert len(emails("plan-changed:" + subscription["id"])) == 1


def test_a_subscription_never_seen_is_adopted_with_its_customer(localstripe, stripe_client):
    customer, user_id = new_customer(localstripe)
    subscription = localstripe.subscribe(customer, PRICES["team"])
    assert account(customer) is None

    report = run_now(stripe_client)

    item = items_of(report, subscription.id)["subscription"]
    assert (item.kind, item.customer_id, item.fixed) == ("adopted", customer, True)
    assert item.stripe_value == {"status": "active", "plan": PRICES["team"]}
    adopted = account(customer)
    assert adopted is not None
    assert (adopted.user_id, adopted.email, adopted.plan) == (
        user_id,
        f"{user_id}@example.com",
        "team",
    )
    assert local_copy(subscription.id).status == "active"
    assert [change.cause for change in history(subscription.id)] == ["reconciliation"]
    assert report.drifted >= 1 and report.fixed >= 1


def test_a_second_run_right_after_a_repair_finds_nothing(localstripe, stripe_client):
    subscription = new_subscription(localstripe)
    seed(subscription)
    localstripe.cancel(subscription["id"])
    first = run_now(stripe_client)
    assert items_of(first, subscription["id"])["status"].fixed

    second = run_now(stripe_client)

    assert second.status == "succeeded"
    assert second.checked >= 1
    assert (second.drifted, second.fixed, second.items) == (0, 0, [])
    assert len(history(subscription["id"])) == 2  # the seed, the repair: nothing more


def test_a_subscription_stripe_no_longer_has_is_marked_and_kept(localstripe, stripe_client):
    known = new_subscription(localstripe)
    gone = {**known, "id": known["id"] + "gone"}  # a copy Stripe never had (or deleted)
    seed(gone)

    report = run_now(stripe_client)

    item = items_of(report, gone["id"])["subscription"]
    assert (item.kind, item.fixed) == ("missing_in_stripe", False)
    assert "not deleted" in item.reason
    copy = local_copy(gone["id"])
    assert copy is not None and copy.missing_in_stripe_since is not None
    assert copy.status == "active"  # reported for a person to decide; nothing else touched
    # Reported once: the next run knows it is marked.
    assert items_of(run_now(stripe_client), gone["id"]) == {}
