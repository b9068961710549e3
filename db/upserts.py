"""The row of a Stripe object, inserted the first time it is met and then locked."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy import Select, bindparam, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import InstrumentedAttribute, Session

from db.models import Base

Row = TypeVar("Row", bound=Base)


def insert_or_lock(
    session: Session, model: type[Row], *, key: InstrumentedAttribute[str], values: dict[str, Any]
) -> tuple[Row, bool]:
    """The row whose unique `key` column holds `values[key]`: inserted with `values` unless it
    exists, then locked until the transaction ends and read as committed now; (row, created).
    A row that exists is locked and read at once (most calls: one statement). Otherwise the
    insert, then the same read: two deliveries of a new object both insert, one wins, and
    both wait on that one row instead of both finding nothing; the fresh read, because the
    caller may hold a copy from before the lock (the billing API reads the row, then calls
    Stripe) and must compare with what is stored."""
    row = _locked(session, model, key=key, value=values[key.key])
    if row is not None:
        return row, False
    inserted = session.execute(
        insert(model).values(**values).on_conflict_do_nothing(index_elements=[key]).returning(key)
    ).scalar_one_or_none()
    row = _locked(session, model, key=key, value=values[key.key])
    assert row is not None  # inserted now, or by another delivery meanwhile
    return row, inserted is not None


def _locked(
    session: Session, model: type[Row], *, key: InstrumentedAttribute[str], value: str
) -> Row | None:
    return session.scalar(_lock_statement(model, key), {"value": value})


@lru_cache(maxsize=16)
def _lock_statement(model: type[Row], key: InstrumentedAttribute[str]) -> Select[tuple[Row]]:
    """Built once per model: most events lock a subscription or a Stripe object this way
    (docs/decisions/0007)."""
    return (
        select(model)
        .where(key == bindparam("value"))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
