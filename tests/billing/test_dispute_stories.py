"""Whole dispute stories, every event delivered twice and out of order: the ledger sums, the
admin emails as a real SMTP server receives them (sent by the real worker), and the evidence
reminders with the clock moved rather than waited for."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

import pytest

from billing.context import BillingContext
from billing.dispute_notices import remind_evidence_due
from db.session import transaction
from tests.support.smtp import RecordingHandler
from tests.support.stripe_events import (
    CREDITS,
    Ids,
    balance,
    dispute_event,
    dispute_row,
    emails,
    funds_movements,
    known_customer,
    process_ok,
    stripe_event,
)

ADMIN = "ops@example.com"
T0 = 1_800_000_000
DAY = 86_400


def mails_about(smtp: RecordingHandler, dispute_id: str, *, until: str) -> list[str]:
    """The subjects of the admin mails naming the dispute, once one containing `until` came."""

    def subjects() -> list[str]:
        return sorted(
            str(r.message["Subject"])
            for r in smtp.for_recipient(ADMIN)
            if dispute_id in r.message.get_body(("plain",)).get_content()
        )

    deadline = time.monotonic() + 20
    while not any(until in subject for subject in subjects()):
        if time.monotonic() > deadline:
            raise AssertionError(f"no mail {until!r} about {dispute_id}: {subjects()}")
        time.sleep(0.05)
    time.sleep(0.3)  # a stray duplicate would show itself by now
    return subjects()


def paid_customer() -> Ids:
    ids = known_customer(Ids())
    # An API version whose invoice names its payment, so the dispute links without Stripe.
    process_ok(stripe_event("invoice.paid", ids, api_version="2022-11-15"))
    return ids


def deliver_twice_out_of_order(events: list[dict], order: str) -> None:
    deliveries = [e for event in events for e in (event, {**event, "id": event["id"] + "_2"})]
    if order == "reversed":
        deliveries.reverse()
    else:
        random.Random(order).shuffle(deliveries)
    for event in deliveries:
        process_ok(event)


ORDERS = ["reversed", "shuffled-1", "shuffled-2"]


def remind(ctx: BillingContext, now: float) -> None:
    """The daily reminders' run, at `now` (Unix time), with its own transaction."""
    with transaction() as session:
        remind_evidence_due(session, ctx, now=datetime.fromtimestamp(now, UTC))


@pytest.mark.parametrize("order", ORDERS)
def test_opened_then_won(order, smtp_server, worker):
    ids = paid_customer()
    deliver_twice_out_of_order(
        [
            dispute_event("charge.dispute.created", ids, created=T0),
            dispute_event("charge.dispute.updated", ids, created=T0 + 100),
            dispute_event("charge.dispute.closed", ids, created=T0 + 200, status="won"),
        ],
        order,
    )

    assert dispute_row(ids.dispute).status == "won"
    assert balance(ids.customer) == CREDITS["pro"]  # held, then given back once
    subjects = mails_about(smtp_server, ids.dispute, until="Dispute won")
    assert len(subjects) == len(set(subjects)) <= 2  # at most opened (if seen open) and won


@pytest.mark.parametrize("order", ORDERS)
def test_opened_then_lost(order, smtp_server, worker):
    ids = paid_customer()
    deliver_twice_out_of_order(
        [
            dispute_event("charge.dispute.created", ids, created=T0),
            dispute_event("charge.dispute.closed", ids, created=T0 + 200, status="lost"),
        ],
        order,
    )

    assert dispute_row(ids.dispute).status == "lost"
    assert balance(ids.customer) == 0  # the hold stays
    subjects = mails_about(smtp_server, ids.dispute, until="Dispute lost")
    assert len(subjects) == len(set(subjects)) <= 2


@pytest.mark.parametrize("order", ORDERS)
def test_an_inquiry_that_closes(order, smtp_server, worker):
    ids = paid_customer()
    deliver_twice_out_of_order(
        [
            dispute_event(
                "charge.dispute.created", ids, created=T0, status="warning_needs_response"
            ),
            dispute_event("charge.dispute.closed", ids, created=T0 + 50, status="warning_closed"),
        ],
        order,
    )

    row = dispute_row(ids.dispute)
    assert (row.status, row.is_inquiry) == ("warning_closed", True)
    assert balance(ids.customer) == CREDITS["pro"]  # an inquiry never holds
    assert [e.context["outcome"] for e in emails(f"dispute-closed:{ids.dispute}")] == ["closed"]


@pytest.mark.parametrize("order", ORDERS)
def test_funds_withdrawn_and_reinstated(order, smtp_server, worker):
    ids = paid_customer()
    deliver_twice_out_of_order(
        [
            dispute_event("charge.dispute.created", ids, created=T0),
            dispute_event("charge.dispute.funds_withdrawn", ids, created=T0),
            dispute_event("charge.dispute.closed", ids, created=T0 + 300, status="won"),
            dispute_event("charge.dispute.funds_reinstated", ids, created=T0 + 300),
        ],
        order,
    )

    assert sorted(funds_movements(ids.dispute)) == [
        ("funds_reinstated", 2900, -1500),
        ("funds_withdrawn", -2900, 1500),
    ]
    assert balance(ids.customer) == CREDITS["pro"]


@pytest.mark.parametrize("status", ["needs_response", "warning_needs_response"])
def test_reminders_at_five_days_and_one_day_once_each(status, billing_ctx, smtp_server, worker):
    ids = paid_customer()
    due_by = 2_000_000_000 + random.randrange(10**6)
    process_ok(dispute_event("charge.dispute.created", ids, status=status, due_by=due_by))

    remind(billing_ctx, due_by - 6 * DAY)
    assert emails(f"dispute-evidence-due:{ids.dispute}") == []

    for _ in range(2):  # the daily run twice on the same day: one reminder
        remind(billing_ctx, due_by - 4.5 * DAY)
    remind(billing_ctx, due_by - 3.5 * DAY)  # the next day: nothing new
    remind(billing_ctx, due_by - 0.5 * DAY)
    remind(billing_ctx, due_by + DAY)  # too late: nothing

    reminders = emails(f"dispute-evidence-due:{ids.dispute}")
    assert [(r.idempotency_key.rsplit(":", 1)[1], r.context["days_left"]) for r in reminders] == [
        ("5d", 5),
        ("1d", 1),
    ]
    mails_about(smtp_server, ids.dispute, until="Evidence due in 1 day")
    subjects = [s for s in mails_about(smtp_server, ids.dispute, until="5 days") if "Evidence" in s]
    assert sorted(subjects) == sorted(
        f"[Example SaaS] Evidence due in {n}: dispute {ids.dispute} ($29.00)"
        for n in ("1 day", "5 days")
    )


def test_no_reminder_once_a_response_is_submitted(billing_ctx, smtp_server, worker):
    ids = paid_customer()
    due_by = 2_000_000_000 + random.randrange(10**6)
    process_ok(dispute_event("charge.dispute.created", ids, created=T0, due_by=due_by))
    submitted = dispute_event("charge.dispute.updated", ids, created=T0 + 1, due_by=due_by)
    submitted["data"]["object"]["status"] = "needs_response"  # still open, but answered
    process_ok(submitted)

    remind(billing_ctx, due_by - 4 * DAY)
    remind(billing_ctx, due_by - 0.5 * DAY)

    assert emails(f"dispute-evidence-due:{ids.dispute}") == []
