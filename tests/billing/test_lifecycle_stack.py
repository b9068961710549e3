"""Every lifecycle event type through the whole platform, in each of the five API versions:
signed and POSTed to `billing api` over HTTP, processed by the real Celery worker, its effect
read from PostgreSQL, its email as the SMTP server received it; then delivered again (the same
event: a duplicate answer, and a copy under another id: no second effect, no second email).

The rules' finer cases are tested against `billing/` directly (the other test modules); here
each type shows that the wiring, from the endpoint to the mail server, holds in every shape.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from db.invoices import find_invoice
from db.session import new_session
from tests.conftest import WEBHOOK_SECRET
from tests.support.events import encode, signed, wait_for_status
from tests.support.smtp import RecordingHandler
from tests.support.stripe_events import (
    API_VERSIONS,
    CREDITS,
    Ids,
    account,
    ledger,
    redelivered,
    stripe_event,
    subscription,
)

WEBHOOK = "/api/stripe/webhook"
NOW = 1_800_000_000
YEAR = 365 * 86_400

Events = Callable[[Ids, str], list[dict[str, Any]]]


def _event(event_type: str, *, created: int = NOW, variant: str = "") -> Events:
    def build(ids: Ids, version: str) -> list[dict[str, Any]]:
        return [
            stripe_event(event_type, ids, api_version=version, created=created, variant=variant)
        ]

    return build


def _customer(ids: Ids, version: str) -> list[dict[str, Any]]:
    return [stripe_event("customer.created", ids, api_version=version, created=NOW - 100)]


def _then(*builders: Events) -> Events:
    def build(ids: Ids, version: str) -> list[dict[str, Any]]:
        return [event for builder in builders for event in builder(ids, version)]

    return build


def _yearly_upcoming(ids: Ids, version: str) -> list[dict[str, Any]]:
    (event,) = _event("invoice.upcoming")(ids, version)
    for line in event["data"]["object"]["lines"]["data"]:
        line["period"]["end"] = line["period"]["start"] + YEAR
        recurring = (line.get("price") or {}).get("recurring") or {}
        for interval in (recurring, line.get("plan") or {}):
            if "interval" in interval:
                interval["interval"] = "year"
    return [event]


def _two_parts(ids: Ids, version: str) -> list[dict[str, Any]]:
    parts = []
    for number, amount in ((1, 1400), (2, 1500)):
        (event,) = _event("invoice_payment.paid", created=NOW + number)(ids, version)
        payment = event["data"]["object"]
        payment.update(id=f"{ids.invoice_payment}_{number}", amount_paid=amount)
        payment["payment"]["payment_intent"] = f"{ids.payment_intent}_{number}"
        parts.append(event)
    return parts


def _invoice(ids: Ids):
    with new_session() as session:
        return find_invoice(session, invoice_id=ids.invoice)


@dataclass(frozen=True)
class Story:
    named: Events  # the events of the type under test
    effect: Callable[[Ids], None]
    subject: str | None = None  # what the one email's subject says; None: it sends none
    prelude: Events = field(default=_customer)  # processed first, one by one


def _expect(condition: Callable[[Ids], bool]) -> Callable[[Ids], None]:
    def check(ids: Ids) -> None:
        assert condition(ids), ids

    return check


STORIES: dict[str, Story] = {
    "customer.subscription.trial_will_end": Story(
        named=_event("customer.subscription.trial_will_end"),
        effect=_expect(lambda ids: subscription(ids.subscription).status == "trialing"),
        subject="trial ends",
    ),
    "customer.subscription.paused": Story(
        prelude=_then(_customer, _event("customer.subscription.created", created=NOW - 50)),
        named=_event("customer.subscription.paused"),
        effect=_expect(
            lambda ids: (
                (subscription(ids.subscription).status, account(ids.customer).plan)
                == ("paused", "free")
            )
        ),
        subject="is paused",
    ),
    "customer.subscription.resumed": Story(
        prelude=_then(_customer, _event("customer.subscription.paused", created=NOW - 50)),
        named=_event("customer.subscription.resumed"),
        effect=_expect(
            lambda ids: (
                (subscription(ids.subscription).status, account(ids.customer).plan)
                == ("active", "pro")
            )
        ),
        subject="active again",
    ),
    "invoice.upcoming": Story(
        named=_yearly_upcoming,
        effect=_expect(lambda ids: _invoice(ids) is None),  # a preview: nothing stored
        subject="renews on",
    ),
    "invoice.payment_action_required": Story(
        named=_event("invoice.payment_action_required"),
        effect=_expect(lambda ids: _invoice(ids).status == "open"),
        subject="Confirm your payment",
    ),
    "invoice.finalized": Story(
        named=_event("invoice.finalized"),
        effect=_expect(lambda ids: (_invoice(ids).status, ledger(ids.customer)) == ("open", [])),
    ),
    "invoice_payment.paid": Story(
        prelude=_then(_customer, _event("invoice.finalized", created=NOW - 50)),
        named=_two_parts,
        effect=_expect(
            lambda ids: ledger(ids.customer) == [("plan_credits", ids.invoice, CREDITS["pro"])]
        ),
    ),
    "checkout.session.async_payment_failed": Story(
        named=_event("checkout.session.async_payment_failed", variant="payment"),
        effect=_expect(lambda ids: ledger(ids.customer) == []),
        subject="did not go through",
    ),
    "checkout.session.expired": Story(
        named=_event("checkout.session.expired"),
        effect=_expect(lambda ids: ledger(ids.customer) == []),
    ),
    "customer.deleted": Story(
        named=_event("customer.deleted"),
        effect=_expect(
            lambda ids: (
                account(ids.customer).deleted_at is not None
                and account(ids.customer).user_id is None
            )
        ),
    ),
}


def post(http: httpx.Client, event: dict[str, Any]) -> dict[str, Any]:
    body = encode(event)
    response = http.post(WEBHOOK, content=body, headers=signed(body, WEBHOOK_SECRET))
    assert response.status_code == 200, response.text
    return response.json()


def subjects(smtp: RecordingHandler, address: str, text: str) -> list[str]:
    return [
        str(r.message["Subject"])
        for r in smtp.for_recipient(address)
        if text in str(r.message["Subject"])
    ]


@pytest.mark.parametrize("event_type", sorted(STORIES))
def test_each_new_type_through_the_whole_stack_in_every_version(
    event_type, api_server, worker, smtp_server
):
    story = STORIES[event_type]
    runs = [(version, Ids(pack="large")) for version in API_VERSIONS]
    with httpx.Client(base_url=api_server.url, timeout=30) as http:
        # Step by step, each step in every version at once: a step needs the one before.
        preludes = [story.prelude(ids, version) for version, ids in runs]
        for step in zip(*preludes, strict=True):
            for event in step:
                assert post(http, event)["duplicate"] is False
            for event in step:
                assert wait_for_status(event["id"]).status == "processed"
        named = [event for version, ids in runs for event in story.named(ids, version)]
        for event in named:  # all five versions at once, as a busy endpoint would
            assert post(http, event)["duplicate"] is False
        for event in named:
            assert post(http, event)["duplicate"] is True  # Stripe's retry of the delivery
            assert post(http, redelivered(event))["duplicate"] is False  # the same, new id
        for event in named:
            for delivered in (event, redelivered(event)):
                row = wait_for_status(delivered["id"])
                assert row.status == "processed", (delivered["type"], row.last_error)

    for _, ids in runs:
        story.effect(ids)
    if story.subject is None:
        time.sleep(0.5)  # an email sent by mistake would have arrived by now
        for version, ids in runs:
            assert smtp_server.for_recipient(ids.email) == [], (event_type, version)
        return
    for _, ids in runs:
        smtp_server.wait_for(ids.email)
    deadline = time.monotonic() + 20
    while any(not subjects(smtp_server, ids.email, story.subject) for _, ids in runs):
        assert time.monotonic() < deadline, f"no {story.subject!r} email for {event_type}"
        time.sleep(0.05)
    time.sleep(0.5)  # a duplicate would show itself by now
    for version, ids in runs:
        assert len(subjects(smtp_server, ids.email, story.subject)) == 1, (event_type, version)
