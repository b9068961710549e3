"""What the operators' console reads: event rates and lag, event searches and what an event
changed, customers and everything held on them, disputes with their history. Read-only."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Float, and_, cast, func, or_, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from db.models import (
    PENDING_STATUSES,
    Account,
    AdminAction,
    CreditEntry,
    CreditKind,
    Dispute,
    DisputeFundsMovement,
    DisputeStatusChange,
    EmailLog,
    Invoice,
    ReconciliationRun,
    Subscription,
    SubscriptionChange,
    WebhookEvent,
)
from db.webhook_events import is_stripe_event


@dataclass(frozen=True, slots=True)
class MinuteCount:
    minute: datetime
    status: str
    count: int


def events_per_minute(session: Session, *, since: datetime) -> list[MinuteCount]:
    """Events received per minute since `since`, by their status now (their outcome)."""
    minute = func.date_trunc("minute", WebhookEvent.received_at).label("minute")
    rows = session.execute(
        select(minute, WebhookEvent.status, func.count())
        .where(WebhookEvent.received_at >= since)
        .group_by(minute, WebhookEvent.status)
        .order_by(minute)
    )
    return [MinuteCount(minute=m, status=s, count=c) for m, s, c in rows]


@dataclass(frozen=True, slots=True)
class Lag:
    p50_seconds: float | None
    p99_seconds: float | None
    processed: int


def processing_lag(session: Session, *, since: datetime) -> Lag:
    """Receipt to `processed`, for the events processed since `since`: p50 and p99."""
    seconds = func.extract("epoch", WebhookEvent.processed_at - WebhookEvent.received_at)
    p50, p99, count = session.execute(
        select(
            func.percentile_cont(0.5).within_group(cast(seconds, Float)),
            func.percentile_cont(0.99).within_group(cast(seconds, Float)),
            func.count(),
        ).where(WebhookEvent.status == "processed", WebhookEvent.processed_at >= since)
    ).one()
    return Lag(p50_seconds=p50, p99_seconds=p99, processed=count)


def failed_event_count(session: Session) -> int:
    return session.scalar(select(func.count()).where(WebhookEvent.status == "failed")) or 0


def stale_event_count(session: Session, *, older_than: datetime) -> int:
    """Pending events whose last enqueue or claim is older than `older_than`: the sweep's."""
    last_touch = func.greatest(
        WebhookEvent.received_at, WebhookEvent.enqueued_at, WebhookEvent.claimed_at
    )
    return (
        session.scalar(
            select(func.count()).where(
                WebhookEvent.status.in_(PENDING_STATUSES), last_touch < older_than
            )
        )
        or 0
    )


def search_events(
    session: Session,
    *,
    status: str | None = None,
    type: str | None = None,
    customer: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[WebhookEvent]:
    """Stored events, newest first. `customer` matches the event object's `customer`, or
    the object itself for customer events."""
    query = select(WebhookEvent).order_by(WebhookEvent.id.desc()).limit(limit)
    if status:
        query = query.where(WebhookEvent.status == status)
    if type:
        query = query.where(WebhookEvent.type == type)
    if since is not None:
        query = query.where(WebhookEvent.received_at >= since)
    if until is not None:
        query = query.where(WebhookEvent.received_at < until)
    if before_id is not None:
        query = query.where(WebhookEvent.id < before_id)
    if customer:
        obj = WebhookEvent.payload["data"]["object"]
        query = query.where(
            or_(
                obj["customer"].astext == customer,
                and_(obj["object"].astext == "customer", obj["id"].astext == customer),
            )
        )
    return list(session.scalars(query))


def find_event(session: Session, *, stripe_event_id: str) -> WebhookEvent | None:
    return session.scalar(select(WebhookEvent).where(is_stripe_event(stripe_event_id)))


@dataclass(frozen=True, slots=True)
class EventEffects:
    ledger: list[CreditEntry]
    subscription_changes: list[SubscriptionChange]
    dispute_changes: list[DisputeStatusChange]
    funds_movements: list[DisputeFundsMovement]
    emails: list[EmailLog]


def event_effects(session: Session, *, stripe_event_id: str, object_id: str | None) -> EventEffects:
    """What an event changed: rows that name it, and the emails keyed by its object
    (an email's key is `<kind>:<object id>`)."""
    emails: list[EmailLog] = []
    if object_id:
        emails = list(
            session.scalars(
                select(EmailLog)
                .where(EmailLog.idempotency_key.like(f"%:{_like_escape(object_id)}", escape="\\"))
                .order_by(EmailLog.id)
                .limit(50)
            )
        )
    return EventEffects(
        ledger=_by_event(session, CreditEntry, stripe_event_id),
        subscription_changes=_by_event(session, SubscriptionChange, stripe_event_id),
        dispute_changes=_by_event(session, DisputeStatusChange, stripe_event_id),
        funds_movements=_by_event(session, DisputeFundsMovement, stripe_event_id),
        emails=emails,
    )


_Row = TypeVar("_Row")


def _by_event(session: Session, model: type[_Row], stripe_event_id: str) -> list[_Row]:
    column: Any = getattr(model, "stripe_event_id")  # noqa: B009 (every model given has one)
    return list(session.scalars(select(model).where(column == stripe_event_id).limit(100)))


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# --- Customers -------------------------------------------------------------------------------


def search_accounts(session: Session, *, query: str, limit: int = 50) -> list[Account]:
    """Accounts whose customer id or user id is `query`, or whose email contains it."""
    query = query.strip()
    if not query:
        return list(session.scalars(select(Account).order_by(Account.id.desc()).limit(limit)))
    return list(
        session.scalars(
            select(Account)
            .where(
                or_(
                    Account.stripe_customer_id == query,
                    Account.user_id == query,
                    Account.email.ilike(f"%{_like_escape(query)}%", escape="\\"),
                )
            )
            .order_by(Account.id.desc())
            .limit(limit)
        )
    )


def subscriptions_of(session: Session, *, account_id: int) -> list[Subscription]:
    return list(
        session.scalars(
            select(Subscription)
            .where(Subscription.account_id == account_id)
            .order_by(Subscription.id.desc())
        )
    )


def changes_of(session: Session, *, subscription_ids: Sequence[int]) -> list[SubscriptionChange]:
    """The subscriptions' change history, newest first."""
    if not subscription_ids:
        return []
    return list(
        session.scalars(
            select(SubscriptionChange)
            .where(SubscriptionChange.subscription_id.in_(subscription_ids))
            .order_by(SubscriptionChange.id.desc())
            .limit(200)
        )
    )


def invoices_of(session: Session, *, account_id: int, limit: int = 100) -> list[Invoice]:
    return list(
        session.scalars(
            select(Invoice)
            .where(Invoice.account_id == account_id)
            .order_by(Invoice.id.desc())
            .limit(limit)
        )
    )


def emails_to(session: Session, *, address: str, limit: int = 100) -> list[EmailLog]:
    """Emails that went (or are going) to this address, newest first."""
    return list(
        session.scalars(
            select(EmailLog)
            .where(EmailLog.recipients.op("@>")(cast([address], JSONB)))
            .order_by(EmailLog.id.desc())
            .limit(limit)
        )
    )


# --- Disputes --------------------------------------------------------------------------------


def disputes_by_deadline(
    session: Session, *, closed_statuses: Collection[str], open_only: bool, limit: int = 200
) -> list[tuple[Dispute, str | None]]:
    """Disputes, the soonest evidence deadline first (those without one last), each with
    its account's customer id; `open_only` leaves out the closed ones."""
    query = (
        select(Dispute, Account.stripe_customer_id)
        .outerjoin(Account, Account.id == Dispute.account_id)
        .order_by(Dispute.evidence_due_by.asc().nulls_last(), Dispute.id.desc())
        .limit(limit)
    )
    if open_only:
        query = query.where(Dispute.status.not_in(closed_statuses))
    return [(d, c) for d, c in session.execute(query)]


def find_dispute_with_customer(
    session: Session, *, dispute_id: str
) -> tuple[Dispute, Account | None] | None:
    found = session.execute(
        select(Dispute, Account)
        .outerjoin(Account, Account.id == Dispute.account_id)
        .where(Dispute.stripe_dispute_id == dispute_id)
    ).first()
    return None if found is None else (found[0], found[1])


def dispute_history(session: Session, *, dispute_row_id: int) -> list[DisputeStatusChange]:
    return list(
        session.scalars(
            select(DisputeStatusChange)
            .where(DisputeStatusChange.dispute_id == dispute_row_id)
            .order_by(DisputeStatusChange.id)
        )
    )


def dispute_funds(session: Session, *, dispute_row_id: int) -> list[DisputeFundsMovement]:
    return list(
        session.scalars(
            select(DisputeFundsMovement)
            .where(DisputeFundsMovement.dispute_id == dispute_row_id)
            .order_by(DisputeFundsMovement.id)
        )
    )


def dispute_ledger(session: Session, *, dispute_id: str) -> list[CreditEntry]:
    """The dispute's hold and its release, if any."""
    return list(
        session.scalars(
            select(CreditEntry)
            .where(
                CreditEntry.source_id == dispute_id,
                CreditEntry.kind.in_((CreditKind.DISPUTE_HOLD, CreditKind.DISPUTE_RELEASE)),
            )
            .order_by(CreditEntry.id)
        )
    )


# --- Reconciliation --------------------------------------------------------------------------


def recent_runs(session: Session, *, limit: int = 50) -> list[ReconciliationRun]:
    return list(
        session.scalars(
            select(ReconciliationRun).order_by(ReconciliationRun.id.desc()).limit(limit)
        )
    )


def actions_on(session: Session, *, target: str, limit: int = 50) -> list[AdminAction]:
    """The audit rows about one object, newest first."""
    return list(
        session.scalars(
            select(AdminAction)
            .where(AdminAction.target == target)
            .order_by(AdminAction.id.desc())
            .limit(limit)
        )
    )
