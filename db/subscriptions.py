"""Subscriptions: the rows, their history and the queries over them.

Which state is newer and gets written is decided in `billing.subscriptions` (the ordering
guard); this module only reads, locks and writes what it is told.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session

from core.plans import FREE_PLAN
from core.stripe_objects import (
    StripeDict,
    object_id,
    subscription_period,
    subscription_price_id,
)
from db.models import Account, Subscription, SubscriptionChange
from db.upserts import insert_or_lock

# Statuses in which the customer has the plan they pay for.
LIVE_STATUSES = ("active", "trialing", "past_due")
TRACKED_FIELDS = ("status", "plan", "price_id", "cancel_at_period_end", "current_period_end")


class Cause(enum.StrEnum):
    EVENT = "event"
    RECONCILIATION = "reconciliation"
    API = "api"


@dataclass(frozen=True, slots=True)
class SubscriptionState:
    """What Stripe says of a subscription at one moment."""

    stripe_subscription_id: str
    customer_id: str
    status: str
    price_id: str | None
    current_period_start: datetime | None
    current_period_end: datetime | None
    cancel_at_period_end: bool

    @classmethod
    def from_stripe(cls, subscription: StripeDict) -> SubscriptionState:
        start, end = subscription_period(subscription)
        customer = object_id(subscription.get("customer"))
        if not customer or not subscription.get("id") or not subscription.get("status"):
            raise ValueError("subscription object lacks its id, customer or status")
        return cls(
            stripe_subscription_id=subscription["id"],
            customer_id=customer,
            status=subscription["status"],
            price_id=subscription_price_id(subscription),
            current_period_start=start,
            current_period_end=end,
            cancel_at_period_end=bool(subscription.get("cancel_at_period_end")),
        )


@dataclass(slots=True)
class SyncResult:
    subscription: Subscription
    applied: bool  # False: the stored state is newer, or the subscription has ended
    created: bool
    changes: dict[str, list[Any]] = field(default_factory=dict)

    def changed(self, name: str) -> bool:
        return name in self.changes

    def before(self, name: str) -> Any:
        return self.changes[name][0] if name in self.changes else getattr(self.subscription, name)


def find_subscription(session: Session, *, subscription_id: str) -> Subscription | None:
    return session.scalar(_FIND_SUBSCRIPTION, {"subscription_id": subscription_id})


# Built once: read for most events (docs/decisions/0007).
_FIND_SUBSCRIPTION = select(Subscription).where(
    Subscription.stripe_subscription_id == bindparam("subscription_id")
)


def lock_subscription_row(
    session: Session, *, account: Account, state: SubscriptionState, as_of: datetime
) -> tuple[Subscription, bool]:
    """The subscription's row, inserted (with `as_of`) the first time it is met and locked
    until the transaction ends; (row, created)."""
    return insert_or_lock(
        session,
        Subscription,
        key=Subscription.stripe_subscription_id,
        values={
            "stripe_subscription_id": state.stripe_subscription_id,
            "account_id": account.id,
            "status": state.status,
            "state_as_of": as_of,
        },
    )


def record_change(
    session: Session,
    row: Subscription,
    *,
    changes: dict[str, list[Any]],
    cause: Cause,
    stripe_event_id: str | None,
) -> None:
    """Add the change to the subscription's history, with the state it left."""
    session.execute(
        _RECORD_CHANGE,
        {
            "new_subscription_id": row.id,
            "new_cause": cause,
            "new_stripe_event_id": stripe_event_id,
            "new_changes": {k: [_jsonable(v) for v in pair] for k, pair in changes.items()},
            "new_status": row.status,
            "new_plan": row.plan,
            "new_price_id": row.price_id,
            "new_cancel_at_period_end": row.cancel_at_period_end,
            "new_current_period_end": row.current_period_end,
            "new_state_as_of": row.state_as_of,
        },
    )


# Built once, on the table: every renewal records one, and an insert that loads nothing
# needs neither an ORM object nor the unit of work (docs/decisions/0007).
_RECORD_CHANGE = insert(SubscriptionChange.__table__).values(
    {
        column: bindparam(f"new_{column}")
        for column in (
            "subscription_id",
            "cause",
            "stripe_event_id",
            "changes",
            "status",
            "plan",
            "price_id",
            "cancel_at_period_end",
            "current_period_end",
            "state_as_of",
        )
    }
)


def live_subscription(session: Session, *, account_id: int) -> Subscription | None:
    """The account's newest subscription that gives it a plan, if any."""
    return session.scalar(_LIVE_SUBSCRIPTION, {"account_id": account_id})


_LIVE_SUBSCRIPTION = (
    select(Subscription)
    .where(
        Subscription.account_id == bindparam("account_id"),
        Subscription.status.in_(LIVE_STATUSES),
        Subscription.plan.is_not(None),
    )
    .order_by(Subscription.state_as_of.desc(), Subscription.id.desc())
    .limit(1)
)


def latest_subscription(session: Session, *, account_id: int) -> Subscription | None:
    return session.scalar(
        select(Subscription)
        .where(Subscription.account_id == account_id)
        .order_by(Subscription.state_as_of.desc(), Subscription.id.desc())
        .limit(1)
    )


def refresh_account_plan(session: Session, account: Account) -> None:
    """The account's plan is its live subscription's, or `free`."""
    session.flush()
    live = live_subscription(session, account_id=account.id)
    plan = live.plan if live and live.plan else FREE_PLAN
    if account.plan != plan:
        account.plan = plan
        session.flush()


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def subscription_history_page(
    session: Session, *, account_id: int, limit: int, before_id: int | None = None
) -> list[tuple[SubscriptionChange, str]]:
    """The account's subscription changes with each subscription's Stripe id, newest first;
    `before_id` continues after a previous page."""
    query = (
        select(SubscriptionChange, Subscription.stripe_subscription_id)
        .join(Subscription, Subscription.id == SubscriptionChange.subscription_id)
        .where(Subscription.account_id == account_id)
    )
    if before_id is not None:
        query = query.where(SubscriptionChange.id < before_id)
    rows = session.execute(query.order_by(SubscriptionChange.id.desc()).limit(limit)).all()
    return [(row[0], row[1]) for row in rows]
