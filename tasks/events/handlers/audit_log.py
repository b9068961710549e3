"""The handler of a type whose rules are still to come: the audit row is all it keeps."""

from __future__ import annotations

from sqlalchemy.orm import Session

from tasks.events.event import StripeEvent


def log_event(session: Session, event: StripeEvent) -> None:
    """Nothing beyond the stored row and the `handled` line that processing writes."""
