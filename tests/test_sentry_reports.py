"""What reaches Sentry: failed events with their ids, failed emails without addresses."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sentry_sdk

from db.models import EmailLog
from db.session import new_session
from emails.samples import SAMPLES
from tasks.emails import send_email
from tasks.events import registry
from tasks.events.tasks import EVENT_TASKS
from tests.support.events import make_event, store_directly


@pytest.fixture
def sentry_events() -> Iterator[list[dict]]:
    """Sentry on, with every event kept here instead of sent (the SDK's own hook)."""
    captured: list[dict] = []

    def keep(event: dict, hint: dict) -> None:
        captured.append(event)
        return None

    sentry_sdk.init(
        dsn="https://public@sentry.invalid/1", before_send=keep, default_integrations=False
    )
    yield captured
    sentry_sdk.init(dsn=None)


def test_a_failed_event_is_reported_with_its_stripe_ids(sentry_events, monkeypatch):
    def handler(session, event):
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
