"""Best effort: fetch the events of the last days whose delivery failed, and store and enqueue
those `webhook_events` lacks, as if they had just arrived. Stripe keeps failing deliveries for
three days; an old API version or a fake may not know the call, and then the run says so and
carries on."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import stripe

from core.stripe_objects import StripeDict
from db import reconciliation as records
from db.session import transaction
from tasks.events.outbox import enqueue_stored_events
from tasks.events.registry import is_handled
from tasks.reconciliation.listing import list_pages

log = logging.getLogger(__name__)

LOOKBACK = timedelta(days=3)
STORE_BATCH = 100


class CatchUpOutcome(StrEnum):
    DONE = "done"
    UNSUPPORTED = "unsupported"  # the Stripe side refused the call (400/404)
    FAILED = "failed"  # Stripe was unreachable or erred; the run goes on without it


@dataclass(slots=True)
class CatchUp:
    outcome: CatchUpOutcome
    detail: str
    # (event id, type) of each event that was missing here: stored, or only found (dry run).
    missed: list[tuple[str, str]] = field(default_factory=list)


def catch_up_missed_events(*, client: stripe.StripeClient, dry_run: bool) -> CatchUp:
    """Store and enqueue the undelivered events we lack, oldest first; in a dry run, only
    find them."""
    since = int((datetime.now(UTC) - LOOKBACK).timestamp())
    missing: list[StripeDict] = []
    try:
        params = {"delivery_success": False, "created": {"gte": since}}
        for page in list_pages(client, "/v1/events", params):
            missing += _not_stored(page)
    except stripe.InvalidRequestError as exc:
        if exc.http_status not in (400, 404):
            raise
        log.info("missed events: the Stripe side does not list them: %s", exc.user_message)
        return CatchUp(CatchUpOutcome.UNSUPPORTED, _first_line(exc), _ids(missing))
    except stripe.StripeError as exc:
        log.warning("missed events: not fetched: %s", exc)
        return CatchUp(CatchUpOutcome.FAILED, _first_line(exc), _ids(missing))
    # Stripe lists newest first. Stored and queued in the order Stripe made them, a catch-up
    # hands the workers a customer's story as it happened, like live deliveries would.
    missing.sort(key=lambda event: (event.get("created") or 0, event["id"]))
    if dry_run:
        return CatchUp(
            CatchUpOutcome.DONE, f"{len(missing)} undelivered events found", _ids(missing)
        )
    stored = [
        pair
        for start in range(0, len(missing), STORE_BATCH)
        for pair in _store(missing[start : start + STORE_BATCH])
    ]
    return CatchUp(
        CatchUpOutcome.DONE, f"{len(stored)} undelivered events stored and queued", stored
    )


def _not_stored(page: list[StripeDict]) -> list[StripeDict]:
    with transaction() as session:
        known = records.stored_event_ids(session, event_ids=[event["id"] for event in page])
    return [event for event in page if event["id"] not in known]


def _store(events: list[StripeDict]) -> list[tuple[str, str]]:
    """Store the events (another delivery may have stored one meanwhile: skipped) and enqueue
    the handled ones, in the order given."""
    with transaction() as session:
        stored = [
            (row_id, event)
            for event in events
            if (
                row_id := records.store_event(
                    session, event=event, handled=is_handled(event["type"])
                )
            )
            is not None
        ]
    to_queue = [row_id for row_id, event in stored if is_handled(event["type"])]
    if to_queue:
        try:
            enqueue_stored_events(to_queue)
        except Exception as exc:  # the rows are `received`: the sweep enqueues them later
            log.warning("missed events left for the sweep: %s", exc)
    return _ids([event for _, event in stored])


def _ids(events: list[StripeDict]) -> list[tuple[str, str]]:
    return [(event["id"], event["type"]) for event in events]


def _first_line(exc: stripe.StripeError) -> str:
    return (exc.user_message or str(exc)).splitlines()[0][:500]
