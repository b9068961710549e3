"""`customer.subscription.created` / `updated` / `deleted`: newest state wins, upgrades grant
the difference once paid, an ended subscription means `free` and one cancellation email."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tests.support.stripe_events import (
    API_VERSIONS,
    CHANGED_AT,
    CREDITS,
    PRICES,
    Ids,
    account,
    emails,
    history,
    known_customer,
    ledger,
    plan_changed,
    process_ok,
    prorated,
    proration_invoice,
    stripe_event,
    subscription,
)

NOW = 1_800_000_000


@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_a_created_subscription_is_stored_with_its_plan_and_period(api_version):
    ids = Ids()
    process_ok(stripe_event("customer.subscription.created", ids, api_version=api_version))

    row = subscription(ids.subscription)
    assert (row.status, row.plan, row.price_id) == ("active", "pro", PRICES["pro"])
    assert int(row.current_period_end.timestamp()) == 1769904000
    assert row.cancel_at_period_end is False
    assert account(ids.customer).plan == "pro"
    (change,) = history(ids.subscription)
    assert change.cause == "event"
    assert change.changes["status"] == [None, "active"]


@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_an_upgrade_grants_the_difference_once_paid(api_version):
    ids = known_customer(Ids(previous_price=PRICES["starter"], price=PRICES["pro"]))
    process_ok(stripe_event("customer.subscription.created", ids, api_version=api_version))
    update = stripe_event("customer.subscription.updated", ids, api_version=api_version)
    process_ok(update)
    duplicate = {**update, "id": update["id"] + "_again"}  # the same change, another event
    process_ok(duplicate)
    assert ledger(ids.customer) == []  # not paid yet (see test_upgrade_credits)
    process_ok(_proration(ids, "starter", "pro", api_version=api_version))

    # The time left at the change (the proration line's window): a share of the difference.
    difference = prorated(CREDITS["pro"] - CREDITS["starter"])
    assert [(kind, amount) for kind, _, amount in ledger(ids.customer)] == [
        ("upgrade_credits", difference)
    ]
    (notice,) = emails(f"plan-changed:{ids.subscription}")
    assert notice.context["direction"] == "upgrade"
    assert notice.context["credits_granted"] == 0  # told before the payment


def _step(ids: Ids, old: str, new: str, created: int) -> dict:
    return plan_changed(ids, old_price=PRICES[old], new_price=PRICES[new], created=created)


def _proration(ids: Ids, old: str, new: str, **kwargs: Any) -> dict:
    """The paid invoice of a change's proration; a downgrade's is a credit, nothing due."""
    up = CREDITS[new] > CREDITS[old]
    return proration_invoice(
        ids.next_invoice(),
        old_price=PRICES[old],
        new_price=PRICES[new],
        charged=2000 if up else 1000,
        credited=-1000 if up else -2000,
        **kwargs,
    )


def _paid_step(ids: Ids, old: str, new: str, created: int) -> list[dict]:
    """A change and the paid invoice of its proration."""
    return [_step(ids, old, new, created), _proration(ids, old, new, created=created)]


@pytest.mark.parametrize(
    "order", list(itertools.permutations(range(4))), ids=lambda o: "".join(map(str, o))
)
def test_two_upgrades_in_a_period_each_top_up_their_share_whatever_the_order(order):
    ids = known_customer(Ids(price=PRICES["starter"]))
    process_ok(stripe_event("customer.subscription.created", ids, created=NOW))
    process_ok(stripe_event("invoice.paid", ids, created=NOW))  # the period's starter credits
    events = [*_paid_step(ids, "starter", "pro", NOW + 1), *_paid_step(ids, "pro", "team", NOW + 2)]

    for n in order:
        process_ok(events[n])

    assert sum(amount for _, _, amount in ledger(ids.customer)) == CREDITS["starter"] + prorated(
        CREDITS["pro"] - CREDITS["starter"]
    ) + prorated(CREDITS["team"] - CREDITS["pro"])
    assert subscription(ids.subscription).plan == "team"


def test_a_late_step_after_a_jump_was_granted_adds_its_own_payment_and_tells_nothing():
    ids = known_customer(Ids(price=PRICES["starter"]))
    process_ok(stripe_event("customer.subscription.created", ids, created=NOW))
    process_ok(stripe_event("invoice.paid", ids, created=NOW))
    # The jump as the reconciliation (or the API) records it: starter straight to team.
    for event in _paid_step(ids, "starter", "team", NOW + 2):
        process_ok(event)
    # Stripe retries the lost events of the step through pro, days later.
    for event in _paid_step(ids, "starter", "pro", NOW + 1):
        process_ok(event)

    # Each paid proration buys its own share (credits follow money); the step's team change
    # is the jump's key, so only the pro step's proration adds.
    assert sum(amount for _, _, amount in ledger(ids.customer)) == CREDITS["starter"] + prorated(
        CREDITS["team"] - CREDITS["starter"]
    ) + prorated(CREDITS["pro"] - CREDITS["starter"])
    notices = emails(f"plan-changed:{ids.subscription}")
    assert [n.context["new_plan_name"] for n in notices] == ["Team"]


def test_upgrades_before_the_period_s_invoice_is_stored_still_reach_the_last_plan():
    ids = known_customer(Ids(price=PRICES["starter"]))
    process_ok(stripe_event("customer.subscription.created", ids, created=NOW))
    for event in [
        *_paid_step(ids, "starter", "pro", NOW + 1),
        *_paid_step(ids, "pro", "team", NOW + 2),
    ]:
        process_ok(event)
    process_ok(stripe_event("invoice.paid", ids, created=NOW))  # late: the starter period

    assert sum(amount for _, _, amount in ledger(ids.customer)) == CREDITS["starter"] + prorated(
        CREDITS["pro"] - CREDITS["starter"]
    ) + prorated(CREDITS["team"] - CREDITS["pro"])


@pytest.mark.parametrize(
    ("path", "total"),
    [
        # Down, then up again: the down takes back what the up's top-up gave, once it is.
        (("pro", "starter", "pro"), CREDITS["pro"]),
        # Up, down (takes the up's share back), up: the period's plan plus the last step.
        (
            ("starter", "team", "starter", "pro"),
            CREDITS["starter"] + prorated(CREDITS["pro"] - CREDITS["starter"]),
        ),
        (
            ("starter", "pro", "starter", "team"),
            CREDITS["starter"] + prorated(CREDITS["team"] - CREDITS["starter"]),
        ),
    ],
)
def test_going_down_and_up_within_a_period_pays_nothing_twice(path, total):
    """The changes happen seconds apart (their events' time), so a downgrade takes back about
    what the upgrade before it gave."""
    ids = known_customer(Ids(price=PRICES[path[0]]))
    process_ok(stripe_event("customer.subscription.created", ids, created=NOW))
    process_ok(stripe_event("invoice.paid", ids, created=NOW))
    for n, (old, new) in enumerate(itertools.pairwise(path), start=1):
        for event in _paid_step(ids, old, new, CHANGED_AT + n):
            process_ok(event)

    assert sum(amount for _, _, amount in ledger(ids.customer)) == total


def test_a_downgrade_with_no_top_up_in_its_period_takes_nothing_back_and_says_so():
    ids = known_customer(Ids(previous_price=PRICES["team"], price=PRICES["starter"]))
    process_ok(stripe_event("customer.subscription.updated", ids))

    assert ledger(ids.customer) == []
    assert account(ids.customer).plan == "starter"
    (notice,) = emails(f"plan-changed:{ids.subscription}")
    assert notice.context["direction"] == "downgrade"


def test_a_change_to_an_unknown_price_grants_nothing():
    ids = Ids(previous_price=PRICES["starter"], price="price_not_ours")
    process_ok(stripe_event("customer.subscription.updated", ids))

    assert ledger(ids.customer) == []
    assert subscription(ids.subscription).plan is None
    assert account(ids.customer).plan == "free"


def test_deletion_returns_the_account_to_free_with_one_cancellation_email():
    ids = known_customer(Ids())
    process_ok(stripe_event("customer.subscription.created", ids, created=NOW))
    process_ok(stripe_event("customer.subscription.deleted", ids, created=NOW + 10))
    process_ok(stripe_event("customer.subscription.deleted", ids, created=NOW + 10))

    assert subscription(ids.subscription).status == "canceled"
    assert account(ids.customer).plan == "free"
    (notice,) = emails(f"subscription-canceled:{ids.subscription}")
    assert notice.template == "subscription_canceled"
    assert notice.context["plan_name"] == "Pro"
    assert not emails(f"payment-failed:{ids.invoice}")  # not the old code's wrong email


@pytest.mark.parametrize(
    "order", list(itertools.permutations(["created", "updated", "deleted"])), ids="-".join
)
def test_out_of_order_delivery_ends_in_the_newest_state(order):
    ids = known_customer(Ids())
    created_at = {"created": NOW, "updated": NOW + 5, "deleted": NOW + 10}
    events = {
        name: stripe_event(f"customer.subscription.{name}", ids, created=created_at[name])
        for name in created_at
    }
    events["updated"]["data"]["object"]["cancel_at_period_end"] = True

    for name in order:
        process_ok(events[name])

    row = subscription(ids.subscription)
    assert row.status == "canceled"
    assert account(ids.customer).plan == "free"
    assert int(row.state_as_of.timestamp()) == NOW + 10
    assert len(emails(f"subscription-canceled:{ids.subscription}")) == 1


def test_equal_times_apply_but_an_ended_subscription_is_never_revived():
    ids = Ids()
    process_ok(stripe_event("customer.subscription.deleted", ids, created=NOW))
    process_ok(stripe_event("customer.subscription.created", ids, created=NOW))

    assert subscription(ids.subscription).status == "canceled"
    assert account(ids.customer).plan == "free"


def test_an_older_state_does_not_overwrite_a_newer_one():
    ids = Ids()
    newer = stripe_event("customer.subscription.updated", ids, created=NOW + 60)
    newer["data"]["object"]["cancel_at_period_end"] = True
    older = stripe_event("customer.subscription.updated", ids, created=NOW)

    process_ok(newer)
    process_ok(older)

    assert subscription(ids.subscription).cancel_at_period_end is True
    changes = history(ids.subscription)
    assert len(changes) == 1  # the stale event recorded nothing
