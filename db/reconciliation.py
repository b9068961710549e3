"""Reconciliation records: runs, their items, the one-run-at-a-time rule, and the reads a run
makes of the local copies. Data functions only flush; the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from core.stripe_objects import timestamp
from db.locks import advisory_lock
from db.models import (
    Account,
    EventStatus,
    ReconciliationItem,
    ReconciliationRun,
    RunStatus,
    Subscription,
    WebhookEvent,
)
from db.webhook_events import stored_stripe_ids

# Held (session-level) by the process doing a run, for as long as it works on it.
EXECUTION_LOCK = "reconciliation:execution"
START_LOCK = "reconciliation:start"
LISTED_TABLE = "reconciliation_listed"
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's lock_timeout error


@dataclass(frozen=True, slots=True)
class LocalState:
    """The local copy of a subscription, as the reconciliation compares it."""

    stripe_subscription_id: str
    customer_id: str
    status: str
    plan: str | None
    price_id: str | None
    current_period_end: datetime | None
    cancel_at_period_end: bool
    missing_in_stripe_since: datetime | None


# --- Runs -------------------------------------------------------------------------------------


# A `running` run nobody has touched for this long lost its process (pages take a second).
RUN_STALE_AFTER = timedelta(minutes=10)


def start_run(
    session: Session, *, trigger: str, stale_after: timedelta = RUN_STALE_AFTER
) -> tuple[ReconciliationRun, bool]:
    """A new `running` run, or the one already going; (run, created).

    A `running` row that no process holds and that nobody touched for `stale_after` lost
    its process (a killed worker, a lost message): it is closed as failed, and a new run
    starts."""
    advisory_lock(session, START_LOCK)  # two triggers at once: one creates, one finds it
    running = session.scalar(
        select(ReconciliationRun).where(ReconciliationRun.status == RunStatus.RUNNING)
    )
    if running is not None:
        held = execution_held(session)
        fresh = running.updated_at > session.scalar(select(func.now())) - stale_after
        if held or fresh:
            return running, False
        running.status = RunStatus.FAILED
        running.error = f"abandoned in phase {running.phase}: no process worked on it"
        running.finished_at = func.now()
        session.flush()
    run = ReconciliationRun(trigger=trigger)
    session.add(run)
    session.flush()
    session.refresh(run)
    return run, True


def hold_execution(session: Session, *, wait_seconds: float) -> bool:
    """Take the run lock for as long as this connection lives (or until `release_execution`),
    waiting up to `wait_seconds` for a holder to let go; False if it did not.

    Waiting matters: a run that has just finished marks itself done before its connection
    has let go of the lock, and the next run must not be turned away by that."""
    session.execute(text(f"SET LOCAL lock_timeout = '{int(wait_seconds * 1000)}ms'"))
    try:
        with session.begin_nested():
            session.execute(
                text("SELECT pg_advisory_lock(hashtextextended(:key, 0))"),
                {"key": EXECUTION_LOCK},
            )
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE:
            return False
        raise
    return True


def release_execution(session: Session) -> None:
    session.execute(
        text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))"), {"key": EXECUTION_LOCK}
    )


def execution_held(session: Session) -> bool:
    """Whether a process holds the run lock, asked of `pg_locks` without taking it: taking it,
    even for a moment, could turn away the process about to start the run."""
    return bool(
        session.scalar(
            text(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " AND objsubid = 1"  # a bigint key: its high half in classid, its low in objid
                " AND ((classid::bigint << 32) | objid::bigint) = hashtextextended(:key, 0))"
            ),
            {"key": EXECUTION_LOCK},
        )
    )


def find_run(session: Session, *, run_id: int) -> ReconciliationRun | None:
    return session.get(ReconciliationRun, run_id)


def run_items(session: Session, *, run_id: int) -> Sequence[ReconciliationItem]:
    return session.scalars(
        select(ReconciliationItem)
        .where(ReconciliationItem.run_id == run_id)
        .order_by(ReconciliationItem.id)
    ).all()


def record_progress(
    session: Session,
    *,
    run_id: int,
    phase: str,
    checked: int,
    drifted: int,
    fixed: int,
    last_subscription_id: str | None,
) -> None:
    session.execute(
        update(ReconciliationRun)
        .where(ReconciliationRun.id == run_id)
        .values(
            phase=phase,
            checked=checked,
            drifted=drifted,
            fixed=fixed,
            last_subscription_id=last_subscription_id,
            updated_at=func.now(),
        )
    )
    session.flush()


def record_missed_events(session: Session, *, run_id: int, outcome: str, detail: str) -> None:
    session.execute(
        update(ReconciliationRun)
        .where(ReconciliationRun.id == run_id)
        .values(missed_events=outcome, missed_events_detail=detail, updated_at=func.now())
    )
    session.flush()


def finish_run(session: Session, *, run_id: int, status: RunStatus, error: str | None) -> None:
    session.execute(
        update(ReconciliationRun)
        .where(ReconciliationRun.id == run_id, ReconciliationRun.status == RunStatus.RUNNING)
        .values(status=status, error=error, finished_at=func.now(), updated_at=func.now())
    )
    session.flush()


def add_item(
    session: Session,
    *,
    run_id: int,
    kind: str,
    object_id: str,
    customer_id: str | None,
    field: str,
    local_value: Any,
    stripe_value: Any,
    fixed: bool,
    reason: str | None,
) -> None:
    """Record one difference, once per run."""
    session.execute(
        insert(ReconciliationItem)
        .values(
            run_id=run_id,
            kind=kind,
            object_id=object_id,
            stripe_customer_id=customer_id,
            field=field,
            local_value=local_value,
            stripe_value=stripe_value,
            fixed=fixed,
            reason=reason,
        )
        .on_conflict_do_nothing(constraint="uq_reconciliation_items_difference")
    )
    session.flush()


# --- What a run reads and marks ---------------------------------------------------------------


def local_states(session: Session, *, subscription_ids: Sequence[str]) -> dict[str, LocalState]:
    """The local copies of one page of Stripe subscriptions, in one query."""
    rows = session.execute(
        select(
            Subscription.stripe_subscription_id,
            Account.stripe_customer_id,
            Subscription.status,
            Subscription.plan,
            Subscription.price_id,
            Subscription.current_period_end,
            Subscription.cancel_at_period_end,
            Subscription.missing_in_stripe_since,
        )
        .join(Account, Account.id == Subscription.account_id)
        .where(Subscription.stripe_subscription_id.in_(subscription_ids))
    ).all()
    return {row[0]: LocalState(*row) for row in rows}


def local_state(session: Session, *, subscription_id: str) -> LocalState | None:
    return local_states(session, subscription_ids=[subscription_id]).get(subscription_id)


def create_listed_table(session: Session) -> None:
    """A temporary table of the ids Stripe listed, so memory stays flat whatever the count.
    It lives as long as the run's connection."""
    session.execute(
        text(f"CREATE TEMPORARY TABLE IF NOT EXISTS {LISTED_TABLE} (id text PRIMARY KEY)")
    )
    session.execute(text(f"TRUNCATE {LISTED_TABLE}"))


def remember_listed(session: Session, *, subscription_ids: Sequence[str]) -> None:
    session.execute(
        text(
            f"INSERT INTO {LISTED_TABLE} SELECT unnest(CAST(:ids AS text[])) ON CONFLICT DO NOTHING"
        ),
        {"ids": list(subscription_ids)},
    )


def unlisted_subscriptions(
    session: Session, *, after_id: int, listed_before: datetime, limit: int
) -> list[tuple[int, str]]:
    """(row id, subscription id) of local copies Stripe did not list and that are not marked
    missing yet, in row order from `after_id`. Copies made after the listing began are left
    out: Stripe may have created them after the listing passed their place."""
    not_listed = text(
        f"NOT EXISTS (SELECT 1 FROM {LISTED_TABLE} l"
        " WHERE l.id = subscriptions.stripe_subscription_id)"
    )
    rows = session.execute(
        select(Subscription.id, Subscription.stripe_subscription_id)
        .where(
            Subscription.id > after_id,
            Subscription.missing_in_stripe_since.is_(None),
            Subscription.created_at < listed_before,
            not_listed,
        )
        .order_by(Subscription.id)
        .limit(limit)
    ).all()
    return [(row[0], row[1]) for row in rows]


def mark_missing(session: Session, *, subscription_id: str) -> datetime | None:
    """Note that Stripe no longer has the subscription; the row stays. When it was first
    noted, or None if the row is gone."""
    since = session.execute(
        update(Subscription)
        .where(Subscription.stripe_subscription_id == subscription_id)
        .values(
            missing_in_stripe_since=func.coalesce(Subscription.missing_in_stripe_since, func.now())
        )
        .returning(Subscription.missing_in_stripe_since)
    ).scalar_one_or_none()
    session.flush()
    return since


# --- Missed events ----------------------------------------------------------------------------


def stored_event_ids(session: Session, *, event_ids: Sequence[str]) -> set[str]:
    return stored_stripe_ids(session, stripe_event_ids=event_ids)


def store_event(session: Session, *, event: dict[str, Any], handled: bool) -> int | None:
    """Store an event fetched from Stripe as the webhook endpoint would have: `received`, or
    `ignored` when no task `handled` its type; the row id, or None if it was stored before
    (the table's insert trigger drops a second row of one Stripe id, migration 0016)."""
    return session.execute(
        insert(WebhookEvent)
        .values(
            stripe_event_id=event["id"],
            type=event["type"],
            api_version=event.get("api_version"),
            livemode=bool(event.get("livemode")),
            account=event.get("account"),
            stripe_created=timestamp(event.get("created")),
            payload=event,
            status=EventStatus.RECEIVED if handled else EventStatus.IGNORED,
            processed_at=None if handled else func.now(),
        )
        .returning(WebhookEvent.id)
    ).scalar_one_or_none()
