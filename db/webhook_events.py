"""Finding `webhook_events` rows by Stripe event id across the monthly partitions."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, select, text
from sqlalchemy.orm import Session

from db.models import WebhookEvent, WebhookEventId


def is_stripe_event(stripe_event_id: str) -> ColumnElement[bool]:
    """A WHERE clause for the row of one Stripe event id: one probe of `webhook_event_ids`,
    whose row id PostgreSQL then uses to read a single partition (run-time pruning), where a
    condition on `stripe_event_id` itself would probe every month."""
    row_id = (
        select(WebhookEventId.row_id)
        .where(WebhookEventId.stripe_event_id == stripe_event_id)
        .scalar_subquery()
    )
    return WebhookEvent.id == row_id


def stored_stripe_ids(session: Session, *, stripe_event_ids: Sequence[str]) -> set[str]:
    """Which of these Stripe event ids are stored (one index probe each)."""
    return set(
        session.scalars(
            select(WebhookEventId.stripe_event_id).where(
                WebhookEventId.stripe_event_id.in_(stripe_event_ids)
            )
        )
    )


# How many months ahead of the current one have their partition ready: a missed daily run (or
# several) never sends rows to the DEFAULT partition.
MONTHS_AHEAD = 3


def ensure_partitions(session: Session, *, months_ahead: int = MONTHS_AHEAD) -> list[str]:
    """Create the partitions of this month and the next `months_ahead` that are missing
    (moving in any rows the DEFAULT partition holds for them); their names."""
    created = session.execute(
        text(
            "SELECT to_char(month, 'YYYY-MM') FROM ("
            " SELECT date_trunc('month', (now() AT TIME ZONE 'UTC')"
            "   + make_interval(months => m))::date AS month"
            " FROM generate_series(0, :ahead) AS m) AS months"
            " WHERE webhook_events_ensure_partition(month)"
        ),
        {"ahead": months_ahead},
    ).scalars()
    return list(created)
