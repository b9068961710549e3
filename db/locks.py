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
    advisory_lock(session, customer_key(customer_id))


def customer_key(customer_id: str) -> str:
    return f"customer:{customer_id}"


def lock_customers(session: Session, customer_ids: list[str]) -> None:
    """`lock_customer` for each customer, in the order given (each once), in one statement.
    The function scan yields the keys in array order, which is the ORDER BY's (the plan has
    no sort), and takes each lock as it yields its key."""
    keys = list(dict.fromkeys(customer_key(c) for c in customer_ids))
    if keys:
        session.execute(_LOCK_CUSTOMERS, {"keys": keys})


_LOCK_CUSTOMERS = text(
    "SELECT pg_advisory_xact_lock(hashtextextended(k.key, 0))"
    " FROM unnest(CAST(:keys AS text[])) WITH ORDINALITY AS k(key, n) ORDER BY k.n"
)
