"""The outbox sweep's claim, shared by the webhook events and the email outbox: the rows left
pending too long are taken once, whatever number of sweeps run at the same time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Row, func, select, text, update
from sqlalchemy.orm import Session

from db.models import EmailLog, WebhookEvent


def claim_stale_rows(
    session: Session,
    *,
    model: type[WebhookEvent] | type[EmailLog],
    pending: ColumnElement[bool],
    last_touched: ColumnElement[Any],
    stale_after_seconds: int,
    limit: int,
    returning: Sequence[ColumnElement[Any]],
    values: Mapping[str, Any] | None = None,
) -> Sequence[Row[Any]]:
    """Mark up to `limit` pending rows untouched for `stale_after_seconds` (lowest ids first)
    as enqueued now, set `values` on them too, and return their `returning` columns.

    A row another transaction holds (a live worker's) is skipped, not waited for; two sweeps
    never claim the same row. `enqueued_at` in the future (a retry scheduled later) is no
    staleness: `last_touched` should include it.
    """
    stale = (
        select(model.id)
        .where(
            pending,
            last_touched < func.now() - text(f"interval '{int(stale_after_seconds)} seconds'"),
        )
        .order_by(model.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    # `= ANY(ARRAY(...))`, not `IN (...)`: the ids come as one array parameter, so on the
    # partitioned webhook_events the update plans no join against every month and prunes to
    # the partitions that hold them (planning 38 ms -> 7 ms with 17 partitions, measured).
    return session.execute(
        update(model)
        .where(model.id == func.any(func.array(stale.scalar_subquery())))
        .values(**(values or {}), enqueued_at=func.now())
        .returning(*returning)
    ).all()
