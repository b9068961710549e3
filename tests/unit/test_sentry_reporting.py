"""What the platform's Sentry set-up sends, decided in this process: no local variables,
and a database outage reported once a minute rather than once per failed delivery."""

from __future__ import annotations

import sentry_sdk

from core.sentry import init_sentry
from core.settings import load_settings


def test_the_platforms_sentry_never_attaches_local_variables():
    """Handlers hold Stripe objects with customer emails in their locals."""
    init_sentry(load_settings(sentry_dsn="https://public@sentry.invalid/1"), component="test")
    try:
        collection = sentry_sdk.get_client().options["data_collection"]
        assert collection["stack_frame_variables"] is False
        assert collection["user_info"] is False
        assert collection["http_bodies"] == []
    finally:
        sentry_sdk.init(dsn=None)


def test_an_outage_is_reported_once_a_minute_and_a_refused_payload_every_time(sentry_events):
    from api.ingest import (
        IncomingEvent,
        OutageReports,
        StorageUnavailable,
        UnstorableEvent,
        _report_unstored,
    )

    def incoming(event_id: str) -> IncomingEvent:
        return IncomingEvent(
            stripe_event_id=event_id,
            type="invoice.paid",
            api_version=None,
            livemode=False,
            account=None,
            created=None,
            payload=b"{}",
            status="received",
        )

    reports = OutageReports(every_seconds=60)
    for number in range(50):
        _report_unstored(incoming(f"evt_outage_{number}"), StorageUnavailable("down"), reports)
    for number in range(3):
        _report_unstored(incoming(f"evt_refused_{number}"), UnstorableEvent("NUL"), reports)

    outage = [e for e in sentry_events if e["tags"]["stripe_event_id"].startswith("evt_outage")]
    refused = [e for e in sentry_events if e["tags"]["stripe_event_id"].startswith("evt_refused")]
    assert len(outage) == 1 and len(refused) == 3
    assert reports.held_back == 49
