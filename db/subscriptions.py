"""Subscriptions: apply Stripe's state under the ordering guard, and record every change.

Every writer goes through `sync_subscription`: webhook handlers, the objects Stripe returns to
the billing API, and the reconciliation. State older than what is stored (`state_as_of`) is
skipped, equal times apply, and a subscription that has ended is never brought back.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from core.plans import FREE_PLAN
from core.stripe_objects import (
    TERMINAL_SUBSCRIPTION_STATUSES,
    StripeDict,
    object_id,
    subscription_period,
    subscription_price_id,
)
from db.models import Account, Subscription, SubscriptionChange

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
    return session.scalar(
        select(Subscription).where(Subscription.stripe_subscription_id == subscription_id)
    )


def sync_subscription(
    session: Session,
    *,
    account: Account,
    state: SubscriptionState,
    plan: str | None,
    as_of: datetime | None,
    cause: Cause,
    stripe_event_id: str | None = None,
) -> SyncResult:
    """Store the state unless what is stored is newer; record a history row for any change.

    `as_of` is Stripe's `created` of the event that described the state. None means the
    object is Stripe's answer right now (a fetch, or the reply to our own call): newer than
    anything stored, so it applies, stamped no earlier than what it replaces."""
    authoritative = as_of is None
    # Stripe's `created` has whole seconds: an event of the same second as our fetch applies.
    as_of = as_of or datetime.now(UTC).replace(microsecond=0)
    inserted = session.execute(
        insert(Subscription)
        .values(
            stripe_subscription_id=state.stripe_subscription_id,
            account_id=account.id,
            status=state.status,
            state_as_of=as_of,
        )
        .on_conflict_do_nothing(index_elements=[Subscription.stripe_subscription_id])
        .returning(Subscription.id)
    ).scalar_one_or_none()
    created = inserted is not None
    row = session.scalar(
        select(Subscription)
        .where(Subscription.stripe_subscription_id == state.stripe_subscription_id)
        .with_for_update()
        # The caller may hold this row from before the lock (the billing API reads it, then
        # calls Stripe): compare with what is committed now, not with that copy.
        .execution_options(populate_existing=True)
    )
    assert row is not None
    if not created and _is_stale(row, state, row.state_as_of if authoritative else as_of):
        return SyncResult(subscription=row, applied=False, created=False)

    after = {
        "status": state.status,
        "plan": plan,
        "price_id": state.price_id,
        "cancel_at_period_end": state.cancel_at_period_end,
        "current_period_end": state.current_period_end,
    }
    changes = {
        name: [None if created else getattr(row, name), value]
        for name, value in after.items()
        if created or getattr(row, name) != value
    }
    for name, value in after.items():
        setattr(row, name, value)
    row.current_period_start = state.current_period_start
    row.state_as_of = max(row.state_as_of, as_of)
    row.missing_in_stripe_since = None
    if changes:
        record_change(session, row, changes=changes, cause=cause, stripe_event_id=stripe_event_id)
    refresh_account_plan(session, account)
    return SyncResult(subscription=row, applied=True, created=created, changes=changes)


def _is_stale(row: Subscription, state: SubscriptionState, as_of: datetime) -> bool:
    if as_of < row.state_as_of:
        return True
    # Stripe never revives an ended subscription, so a non-final state after a final one is
    # a late delivery, even when Stripe stamped both with the same second.
    return (
        row.status in TERMINAL_SUBSCRIPTION_STATUSES
        and state.status not in TERMINAL_SUBSCRIPTION_STATUSES
    )


def record_change(
    session: Session,
    row: Subscription,
    *,
    changes: dict[str, list[Any]],
    cause: Cause,
    stripe_event_id: str | None,
) -> None:
    session.add(
        SubscriptionChange(
            subscription_id=row.id,
            cause=cause,
            stripe_event_id=stripe_event_id,
            changes={k: [_jsonable(v) for v in pair] for k, pair in changes.items()},
            status=row.status,
            plan=row.plan,
            price_id=row.price_id,
            cancel_at_period_end=row.cancel_at_period_end,
            current_period_end=row.current_period_end,
            state_as_of=row.state_as_of,
        )
    )
    session.flush()


def mark_past_due(
    session: Session,
    *,
    account: Account,
    subscription: Subscription,
    as_of: datetime,
    stripe_event_id: str | None = None,
) -> bool:
    """A failed renewal payment makes a paying subscription `past_due`, as Stripe does.

    Only `active` or `trialing` move, and only for an event strictly newer than the stored
    state: an `incomplete` first payment stays incomplete (it never gave a plan), and an
    `unpaid` or ended state that Stripe sent in the same second is not undone."""
    if subscription.status not in ("active", "trialing") or as_of <= subscription.state_as_of:
        return False
    changes = {"status": [subscription.status, "past_due"]}
    subscription.status = "past_due"
    subscription.state_as_of = as_of
    record_change(
        session, subscription, changes=changes, cause=Cause.EVENT, stripe_event_id=stripe_event_id
    )
    refresh_account_plan(session, account)
    return True


def live_subscription(session: Session, *, account_id: int) -> Subscription | None:
    """The account's newest subscription that gives it a plan, if any."""
    return session.scalar(
        select(Subscription)
        .where(
            Subscription.account_id == account_id,
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
