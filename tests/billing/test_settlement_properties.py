"""Credits follow money, in any order: payment stories delivered in shuffled orders through
the real billing functions on PostgreSQL end with the balance and the subscription state
(status and plan) of their natural order, and never below zero (the stories spend nothing, so
no balance may go below what the customer spent).

A story: a Pro subscription created and its first invoice paid (maybe also through Checkout,
naming its plan or not), maybe a renewal, maybe a credit pack; on each payment, partial and
full refunds, a credit note (refunding a quarter, or crediting it to the customer's balance,
maybe voided again; not on a pack, which has no invoice), and no, one or two disputes opened,
then won or lost or left open; some events delivered twice. Within the first period, maybe a
path of plan changes an hour apart (upgrades and downgrades, each with the invoice of its
proration: paid by a charge going up, a credit with nothing due going down), prorated by the
time left (docs/billing-rules.md, Upgrades and downgrades); the first upgrade's payment maybe
refunded or charged back, lost or won."""

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
    account,
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
NOTES = (None, "refund", "balance", "balance voided")
NOTE = 725  # a quarter of a 2900 payment
UPGRADE_TAKEN = (None, "refund", "dispute lost", "dispute won")
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
    disputes: int  # how many chargebacks, each of an equal share of what is not refunded
    dispute_end: str | None  # the first one's end; a second stays open
    twice: tuple[int, ...]  # which of the payment's events are delivered twice
    note: str | None = None  # a credit note of a quarter: refunding it, or to the balance


@dataclass(frozen=True)
class Story:
    checkout: str | None  # None, or a Checkout naming its plan ("named") or not ("unnamed")
    renewal: PaymentStory | None
    first: PaymentStory
    pack: PaymentStory | None
    changes: tuple[str, ...] = ()  # the plans the subscription moves to, an hour apart
    upgrade_taken: str | None = None  # what happens to the first upgrade's payment


def payment_stories(*, notes: bool = True) -> st.SearchStrategy[PaymentStory]:
    return st.builds(
        PaymentStory,
        refunds=st.lists(st.sampled_from([250, 500, 1000]), max_size=2, unique=True).map(
            lambda shares: tuple(sorted(shares))
        ),
        disputes=st.sampled_from([0, 0, 1, 2]),
        dispute_end=st.sampled_from(DISPUTE_ENDS),
        twice=st.lists(st.integers(0, 6), max_size=2, unique=True).map(tuple),
        note=st.sampled_from(NOTES) if notes else st.none(),
    )


stories = st.builds(
    Story,
    checkout=st.sampled_from([None, "named", "unnamed"]),
    renewal=st.none() | payment_stories(),
    first=payment_stories(),
    pack=st.none() | payment_stories(notes=False),
    changes=st.sampled_from(PLAN_PATHS),
    upgrade_taken=st.sampled_from(UPGRADE_TAKEN),
)


def _with(event: dict[str, Any], **fields: Any) -> dict[str, Any]:
    event["data"]["object"].update(fields)
    return event


def payment_events(ids: Ids, story: PaymentStory, *, amount: int, at: int) -> list[dict]:
    """The refunds, the credit note and the disputes of one payment, in their natural order.
    A credit note's refund is the charge's first refund: the charge's cumulative amounts that
    follow include it."""
    events = []
    refunded = 0
    if story.note == "refund":
        note = stripe_event("credit_note.created", ids, api_version=V, created=at + 5)
        events.append(_with(note, amount=NOTE))
        refunded = NOTE
        events.append(_refunded(ids, amount=amount, refunded=refunded, created=at + 6))
    for n, share in enumerate(story.refunds):
        refunded = min(
            amount, max(refunded, amount * share // 1000 + (NOTE if story.note == "refund" else 0))
        )
        events.append(_refunded(ids, amount=amount, refunded=refunded, created=at + 10 + n))
    if story.note in ("balance", "balance voided"):
        voided = stripe_event("credit_note.voided", ids, api_version=V, created=at + 50)
        _with(voided, amount=NOTE)
        created = {**voided, "type": "credit_note.created", "id": voided["id"] + "_created"}
        created["data"] = {"object": {**voided["data"]["object"], "status": "issued"}}
        created["created"] = at + 20
        events.append(created)
        if story.note == "balance voided":
            events.append(voided)
    left = amount - refunded
    for n in range(story.disputes if left > 0 else 0):
        disputed = replace(ids, dispute=Ids().dispute) if n else ids
        share = left // story.disputes
        opened = stripe_event("charge.dispute.created", disputed, api_version=V, created=at + 100)
        events.append(_with(opened, status="needs_response", amount=share))
        if n == 0 and story.dispute_end is not None:
            closed = stripe_event(
                "charge.dispute.closed", disputed, api_version=V, created=at + 200
            )
            events.append(_with(closed, status=story.dispute_end, amount=share))
    return events + [
        {**events[i], "id": events[i]["id"] + "_again"} for i in story.twice if i < len(events)
    ]


def _refunded(ids: Ids, *, amount: int, refunded: int, created: int) -> dict[str, Any]:
    event = stripe_event("charge.refunded", ids, api_version=V, created=created)
    return _with(event, amount=amount, amount_refunded=refunded, refunded=refunded == amount)


def another_payment(ids: Ids) -> Ids:
    """The customer's next invoice and payment, with its own refund and dispute ids (Stripe's
    disputes belong to one charge: sharing the id would move the first one's dispute)."""
    fresh = Ids()
    return replace(
        ids.next_invoice(),
        dispute=fresh.dispute,
        refund=fresh.refund,
        credit_note=fresh.credit_note,
    )


def story_events(story: Story, ids: Ids) -> list[dict]:
    """Every event of the story, in its natural order."""
    events = [stripe_event("customer.subscription.created", ids, api_version=V, created=T)]
    events.append(stripe_event("invoice.paid", ids, api_version=V, created=T))
    if story.checkout is not None:
        checkout = stripe_event("checkout.session.completed", ids, api_version=V, created=T)
        if story.checkout == "named":  # the platform's own sessions name their plan
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
    return events + plan_change_events(story.changes, ids, story.upgrade_taken)


def plan_change_events(path: tuple[str, ...], ids: Ids, taken: str | None) -> list[dict]:
    """Each change's `customer.subscription.updated` and the paid invoice of its proration;
    the first upgrade's payment then maybe refunded or charged back (`taken`)."""
    events = []
    first_upgrade = True
    for n, (old, new) in enumerate(zip(("pro", *path), path, strict=False), start=1):
        at = CHANGED_AT + n * 3600
        up = CREDITS[new] > CREDITS[old]
        old_price, new_price = PRICES[old], PRICES[new]
        paid_by = another_payment(ids)
        events.append(
            plan_changed(ids, old_price=old_price, new_price=new_price, api_version=V, created=at)
        )
        if up and first_upgrade and taken is not None:
            first_upgrade = False
            events += upgrade_taken(paid_by, taken, at=at)
        events.append(
            proration_invoice(
                paid_by,
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


def upgrade_taken(paid_by: Ids, taken: str, *, at: int) -> list[dict]:
    """The upgrade's proration payment (1000) refunded, or charged back and closed."""
    if taken == "refund":
        return [_refunded(paid_by, amount=1000, refunded=1000, created=at + 600)]
    opened = stripe_event("charge.dispute.created", paid_by, api_version=V, created=at + 600)
    closed = stripe_event("charge.dispute.closed", paid_by, api_version=V, created=at + 700)
    end = taken.removeprefix("dispute ")
    return [
        _with(opened, status="needs_response", amount=1000),
        _with(closed, status=end, amount=1000),
    ]


def outcome(events: list[dict], ids: Ids) -> tuple[int, str | None, str | None]:
    for event in events:
        status = process(event)
        assert status in ("processed", "ignored"), (event["type"], status)
    stored = subscription(ids.subscription)
    found = account(ids.customer)
    return (
        balance(ids.customer),
        stored.status if stored else None,
        found.plan if found else None,
    )


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
        assert got[0] >= 0  # nothing spent: nothing taken beyond what was bought


def test_every_story_settles_the_same_in_any_delivery_order() -> None:
    try:
        run_story()
    finally:
        TALLY.extra["permutations"] = TALLY.kinds["permutation"]
        record_summary(TALLY)
