"""Transaction-scoped advisory locks: serialise work on one Stripe object across workers."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session


def advisory_lock(session: Session, key: str) -> None:
    """Wait for, then hold until the transaction ends, the lock named `key`. A killed worker's
    lock dies with its connection."""
    session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})


def lock_customer(session: Session, customer_id: str) -> None:
    """Serialise all work on one Stripe customer until the transaction ends."""
    advisory_lock(session, f"customer:{customer_id}")
