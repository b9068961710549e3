"""What reaches Sentry: failed events with their ids, failed emails without addresses, new
disputes and unknown prices as warnings."""

from __future__ import annotations

import uuid

import sentry_sdk

from db.models import EmailLog
from db.session import new_session
from emails.samples import SAMPLES
from tasks.emails import send_email
from tasks.events import registry
from tasks.events.tasks import EVENT_TASKS
from tests.support.events import make_event, store_directly
from tests.support.stripe_events import (
    Ids,
    dispute_event,
    known_customer,
    process_ok,
    stripe_event,
)


def test_a_failed_event_is_reported_with_its_stripe_ids(sentry_events, monkeypatch):
    def handler(session, ctx, event):
        raise ValueError("no plan for this price")

    monkeypatch.setitem(registry.HANDLERS, "invoice.paid", handler)
    event = make_event("invoice.paid")
    with sentry_sdk.isolation_scope():
        EVENT_TASKS["invoice.paid"].apply(args=[store_directly(event)])

    (report,) = sentry_events
    assert report["exception"]["values"][-1]["value"] == "no plan for this price"
    assert report["tags"]["stripe_event_id"] == event["id"]
    assert report["tags"]["stripe_event_type"] == "invoice.paid"


def test_a_refused_email_is_reported_without_the_address(sentry_events, smtp_server):
    to = f"reject-{uuid.uuid4().hex[:8]}@example.com"
    with new_session() as session, session.begin():
        row = EmailLog(
            idempotency_key=f"test:{to}",
            template="payment_failed",
            recipients=[to],
            context=SAMPLES["payment_failed"],
        )
        session.add(row)
        session.flush()
        row_id = row.id

    with sentry_sdk.isolation_scope():
        send_email.apply(args=[row_id])

    (report,) = sentry_events
    assert report["level"] == "error"
    assert to not in str(report)
    assert "r***@example.com" in report["message"]
    assert report["tags"]["email_template"] == "payment_failed"


def test_a_new_dispute_is_a_warning_with_its_ids_and_no_customer_details(sentry_events):
    ids = known_customer(Ids())
    with sentry_sdk.isolation_scope():
        process_ok(dispute_event("charge.dispute.created", ids))
        process_ok(dispute_event("charge.dispute.updated", ids))

    (report,) = [r for r in sentry_events if r.get("tags", {}).get("stripe_dispute_id")]
    assert report["level"] == "warning"
    assert report["tags"]["stripe_dispute_id"] == ids.dispute
    assert report["tags"]["stripe_charge_id"] == ids.charge
    assert report["tags"]["stripe_payment_intent_id"] == ids.payment_intent
    assert ids.email not in str(report)


def test_an_unknown_price_is_a_warning(sentry_events):
    ids = Ids(price="price_not_in_the_catalogue")
    with sentry_sdk.isolation_scope():
        process_ok(stripe_event("invoice.paid", ids))

    (report,) = [r for r in sentry_events if r.get("tags", {}).get("stripe_price_id")]
    assert report["level"] == "warning"
    assert report["tags"]["stripe_price_id"] == "price_not_in_the_catalogue"
