"""Transaction-scoped advisory locks: serialise work on one Stripe object across workers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, text
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


def customer_lock_column(key: ColumnElement[str]) -> ColumnElement[Any]:
    """`lock_customer` as a column, to take the lock inside another statement (the event's
    row lock). `key` is the customer's `customer_key`: a bound parameter, so that the
    statement can be built once."""
    return func.pg_advisory_xact_lock(func.hashtextextended(key, 0)).label("customer_lock")
