"""Credits follow money, in any order: payment stories delivered in shuffled orders through
the real billing functions on PostgreSQL end with the balance and the subscription state of
their natural order, and never below zero (the stories spend nothing).

A story: a Pro subscription created and its first invoice paid (maybe also through Checkout),
maybe a renewal, maybe a credit pack; on each payment, partial and full refunds and a dispute
opened, then won or lost or left open; some events delivered twice. Within the first period,
maybe a path of plan changes an hour apart (upgrades and downgrades, each with the invoice of
its proration: paid by a charge going up, a credit with nothing due going down), prorated by
the time left (docs/billing-rules.md, Upgrades and downgrades). The upgrades' own payments are
not refunded or disputed here: a downgrade and a refund of the same top-up both taking it is
not settled yet."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz.conftest import FuzzTally, budget, record_summary, timeout_seconds
from tests.support.stripe_events import (
    CHANGED_AT,
    CREDITS,
    PRICES,
    Ids,
    balance,
    known_customer,
    plan_changed,
    process,
    proration_invoice,
    stripe_event,
    subscription,
)

pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(timeout_seconds())]

V = "2022-11-15"
T = 1_800_000_000
DISPUTE_ENDS = (None, "won", "lost")
# Plan paths from pro within the first period: up, up and down, down, down and up.
PLAN_PATHS = (
    (),
    ("team",),
    ("team", "pro"),
    ("starter",),
    ("starter", "team"),
    ("team", "starter"),
)


@dataclass(frozen=True)
class PaymentStory:
    refunds: tuple[int, ...]  # cumulative shares refunded, in per mille of the charge, rising
    dispute: bool
    dispute_end: str | None
    twice: tuple[int, ...]  # which of the payment's events are delivered twice


@dataclass(frozen=True)
class Story:
    checkout: bool
    renewal: PaymentStory | None
    first: PaymentStory
    pack: PaymentStory | None
    changes: tuple[str, ...] = ()  # the plans the subscription moves to, an hour apart


def payment_stories() -> st.SearchStrategy[PaymentStory]:
    return st.builds(
        PaymentStory,
        refunds=st.lists(st.sampled_from([250, 500, 1000]), max_size=2, unique=True).map(
            lambda shares: tuple(sorted(shares))
        ),
        dispute=st.booleans(),
        dispute_end=st.sampled_from(DISPUTE_ENDS),
        twice=st.lists(st.integers(0, 4), max_size=2, unique=True).map(tuple),
    )


stories = st.builds(
    Story,
    checkout=st.booleans(),
    renewal=st.none() | payment_stories(),
    first=payment_stories(),
    pack=st.none() | payment_stories(),
    changes=st.sampled_from(PLAN_PATHS),
)


def _with(event: dict[str, Any], **fields: Any) -> dict[str, Any]:
    event["data"]["object"].update(fields)
    return event


def payment_events(ids: Ids, story: PaymentStory, *, amount: int, at: int) -> list[dict]:
    """The refunds and the dispute of one payment, in their natural order."""
    events = []
    for n, share in enumerate(story.refunds):
        refunded = amount * share // 1000
        event = stripe_event("charge.refunded", ids, api_version=V, created=at + 10 + n)
        events.append(
            _with(event, amount=amount, amount_refunded=refunded, refunded=refunded == amount)
        )
    if story.dispute:
        opened = stripe_event("charge.dispute.created", ids, api_version=V, created=at + 100)
        events.append(_with(opened, status="needs_response"))
        if story.dispute_end is not None:
            closed = stripe_event("charge.dispute.closed", ids, api_version=V, created=at + 200)
            events.append(_with(closed, status=story.dispute_end))
    return events + [
        {**events[i], "id": events[i]["id"] + "_again"} for i in story.twice if i < len(events)
    ]


def another_payment(ids: Ids) -> Ids:
    """The customer's next invoice and payment, with its own refund and dispute ids (Stripe's
    disputes belong to one charge: sharing the id would move the first one's dispute)."""
    fresh = Ids()
    return replace(ids.next_invoice(), dispute=fresh.dispute, refund=fresh.refund)


def story_events(story: Story, ids: Ids) -> list[dict]:
    """Every event of the story, in its natural order."""
    events = [stripe_event("customer.subscription.created", ids, api_version=V, created=T)]
    events.append(stripe_event("invoice.paid", ids, api_version=V, created=T))
    if story.checkout:
        checkout = stripe_event("checkout.session.completed", ids, api_version=V, created=T)
        # The platform's sessions name their plan; without it a Checkout delivered after a
        # plan change (and before the subscription's first state) would fall back to the price
        # the subscription was first stored with: the changed one (not settled yet).
        checkout["data"]["object"]["metadata"]["plan"] = "pro"
        events.append(checkout)
    events += payment_events(ids, story.first, amount=2900, at=T)
    if story.renewal is not None:
        renewal = another_payment(ids)
        event = stripe_event("invoice.paid", renewal, api_version=V, created=T + 1000)
        events.append(_with(event, billing_reason="subscription_cycle"))
        events += payment_events(renewal, story.renewal, amount=2900, at=T + 1000)
    if story.pack is not None:
        pack = another_payment(ids)
        events.append(
            stripe_event(
                "checkout.session.completed", pack, api_version=V, variant="payment", created=T + 5
            )
        )
        events += payment_events(pack, story.pack, amount=500, at=T + 5)
    return events + plan_change_events(story.changes, ids)


def plan_change_events(path: tuple[str, ...], ids: Ids) -> list[dict]:
    """Each change's `customer.subscription.updated` and the paid invoice of its proration."""
    events = []
    for n, (old, new) in enumerate(zip(("pro", *path), path, strict=False), start=1):
        at = CHANGED_AT + n * 3600
        up = CREDITS[new] > CREDITS[old]
        old_price, new_price = PRICES[old], PRICES[new]
        events.append(
            plan_changed(ids, old_price=old_price, new_price=new_price, api_version=V, created=at)
        )
        events.append(
            proration_invoice(
                ids.next_invoice(),
                old_price=old_price,
                new_price=new_price,
                api_version=V,
                charged=2000 if up else 1000,
                credited=-1000 if up else -2000,
                changed_at=at,
                created=at,
            )
        )
    return events


def outcome(events: list[dict], ids: Ids) -> tuple[int, str | None]:
    for event in events:
        status = process(event)
        assert status in ("processed", "ignored"), (event["type"], status)
    stored = subscription(ids.subscription)
    return balance(ids.customer), stored.status if stored else None


TALLY = FuzzTally(test="billing settlement: shuffled payment stories")


@settings(max_examples=budget("settlement"))
@given(story=stories, seed=st.integers(0, 2**32 - 1))
def run_story(story: Story, seed: int) -> None:
    shuffle = random.Random(seed)
    ids = known_customer(Ids())
    natural = story_events(story, ids)
    expected = outcome(natural, ids)
    TALLY.extra["stories"] = TALLY.extra.get("stories", 0) + 1
    TALLY.count("natural", "ok")
    TALLY.extra["events"] = TALLY.extra.get("events", 0) + len(natural)
    assert expected[0] >= 0
    for _ in range(budget("shuffles")):
        ids = known_customer(Ids())
        events = story_events(story, ids)
        shuffle.shuffle(events)
        got = outcome(events, ids)
        TALLY.count("permutation", "ok" if got == expected else "differs")
        TALLY.extra["events"] += len(events)
        assert got == expected, (story, [e["type"] for e in events])


def test_every_story_settles_the_same_in_any_delivery_order() -> None:
    try:
        run_story()
    finally:
        TALLY.extra["permutations"] = TALLY.kinds["permutation"]
        record_summary(TALLY)
