"""The best-effort catch-up of events whose delivery failed."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from core.stripe_rate_limit import RateLimitedRequestsClient
from tasks.reconciliation.missed_events import CatchUpOutcome, catch_up_missed_events
from tests.reconciliation.conftest import paced_client
from tests.support.events import count_rows, make_event, store_directly, stored
from tests.support.stripe_fake import StripeFake, rate_limited


@pytest.fixture
def fake() -> Iterator[StripeFake]:
    with StripeFake().running() as running:
        yield running


def test_undelivered_events_we_lack_are_stored_and_queued(fake):
    now = int(time.time())
    lost = make_event("customer.subscription.updated", created=now - 3600)
    unhandled = make_event("payment_intent.created", created=now - 60)
    already_here = make_event("invoice.paid", created=now - 7200)
    store_directly(already_here)
    fake.events = [lost, unhandled, already_here]
    client = paced_client(fake.url)

    catch_up = catch_up_missed_events(client=client, dry_run=False)

    assert catch_up.outcome == CatchUpOutcome.DONE
    assert sorted(catch_up.missed) == sorted(
        [(lost["id"], lost["type"]), (unhandled["id"], unhandled["type"])]
    )
    row = stored(lost["id"])
    assert row is not None and row.payload["id"] == lost["id"]
    assert row.status != "received"  # handed to its task, as if it had just arrived
    assert stored(unhandled["id"]).status == "ignored"
    assert count_rows(already_here["id"]) == 1
    (_, _, query) = next(r for r in fake.requests if r[1] == "/v1/events")
    assert query["delivery_success"] == "false"
    assert abs(int(query["created[gte]"]) - (now - 3 * 86400)) < 60

    assert catch_up_missed_events(client=client, dry_run=False).missed == []


def test_a_dry_catch_up_only_finds_them(fake):
    lost = make_event("customer.subscription.deleted", created=int(time.time()))
    fake.events = [lost]

    catch_up = catch_up_missed_events(client=paced_client(fake.url), dry_run=True)

    assert catch_up.missed == [(lost["id"], lost["type"])]
    assert stored(lost["id"]) is None


def test_a_stripe_side_without_the_call_is_recorded_as_unsupported(fake):
    fake.events = None  # answers 404, as an old fake would

    catch_up = catch_up_missed_events(client=paced_client(fake.url), dry_run=False)

    assert catch_up.outcome == CatchUpOutcome.UNSUPPORTED
    assert "No such object" in catch_up.detail


def test_a_stripe_error_is_recorded_and_does_not_raise(fake):
    fake.fail_next = [rate_limited()] * 100
    transport = RateLimitedRequestsClient(rate=1000, retries=0, sleep=lambda _: None)

    catch_up = catch_up_missed_events(client=fake.client(http_client=transport), dry_run=False)

    assert catch_up.outcome == CatchUpOutcome.FAILED


def test_missed_events_are_stored_and_queued_oldest_first(fake):
    """Stripe lists newest first; the catch-up hands them on in the order they happened."""
    now = int(time.time())
    created = make_event("customer.subscription.created", created=now - 300)
    updated = make_event("customer.subscription.updated", created=now - 200)
    paid = make_event("invoice.paid", created=now - 100)
    fake.events = [paid, updated, created]  # as Stripe lists them

    catch_up = catch_up_missed_events(client=paced_client(fake.url), dry_run=False)

    oldest_first = [created, updated, paid]
    assert catch_up.missed == [(event["id"], event["type"]) for event in oldest_first]
    row_ids = [stored(event["id"]).id for event in oldest_first]
    assert row_ids == sorted(row_ids)
