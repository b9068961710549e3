"""The handler every event type uses until its billing rule exists: it records the event in
the worker log, so the spine (claim, transaction, status, retry) is exercised end to end."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from tasks.events.event import StripeEvent

log = logging.getLogger("billing.events")


def log_event(session: Session, event: StripeEvent) -> None:
    """Write one line naming the event; the caller commits the processed status with it."""
    log.info("handled %s %s object=%s", event.type, event.id, event.object.get("id"))
