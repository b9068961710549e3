"""A page of an account's subscription history, for the user's and the admin's routes."""

from __future__ import annotations

from sqlalchemy.orm import Session

from api.schemas import (
    AdminSubscriptionChangeOut,
    AdminSubscriptionHistory,
    SubscriptionChangeOut,
    SubscriptionHistory,
)
from db.models import SubscriptionChange
from db.subscriptions import subscription_history_page


def _page(
    session: Session, *, account_id: int, limit: int, cursor: int | None
) -> tuple[list[tuple[SubscriptionChange, str]], bool, str | None]:
    rows = subscription_history_page(
        session, account_id=account_id, limit=limit + 1, before_id=cursor
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, more, str(rows[-1][0].id) if more else None


def _fields(change: SubscriptionChange, subscription_id: str) -> dict[str, object]:
    return {
        "id": change.id,
        "subscription_id": subscription_id,
        "status": change.status,
        "plan": change.plan,
        "price_id": change.price_id,
        "cancel_at_period_end": change.cancel_at_period_end,
        "current_period_end": change.current_period_end,
        "changes": change.changes,
        "as_of": change.state_as_of,
    }


def user_history(
    session: Session, *, account_id: int, limit: int, cursor: int | None
) -> SubscriptionHistory:
    rows, more, next_cursor = _page(session, account_id=account_id, limit=limit, cursor=cursor)
    return SubscriptionHistory(
        items=[SubscriptionChangeOut.model_validate(_fields(c, s)) for c, s in rows],
        has_more=more,
        next_cursor=next_cursor,
    )


def admin_history(
    session: Session, *, account_id: int, customer_id: str, limit: int, cursor: int | None
) -> AdminSubscriptionHistory:
    rows, more, next_cursor = _page(session, account_id=account_id, limit=limit, cursor=cursor)
    return AdminSubscriptionHistory(
        stripe_customer_id=customer_id,
        items=[
            AdminSubscriptionChangeOut.model_validate(
                {
                    **_fields(c, s),
                    "cause": c.cause,
                    "stripe_event_id": c.stripe_event_id,
                    "recorded_at": c.recorded_at,
                }
            )
            for c, s in rows
        ],
        has_more=more,
        next_cursor=next_cursor,
    )
