"""Disputes: the stored state, the status history, funds movements. Whether a state from
Stripe is newer and applies is `billing.disputes`' decision."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.models import Dispute, DisputeFundsMovement, DisputeStatusChange
from db.upserts import insert_or_lock

# Waiting for the business to answer: the evidence reminders are about these.
AWAITING_RESPONSE = ("needs_response", "warning_needs_response")


class DisputeCause(enum.StrEnum):
    EVENT = "event"
    API = "api"


class FundsMovement(enum.StrEnum):
    WITHDRAWN = "funds_withdrawn"
    REINSTATED = "funds_reinstated"


@dataclass(frozen=True, slots=True)
class DisputeState:
    """The stored columns of a dispute at one moment (`billing.disputes` reads them from
    Stripe's object)."""

    stripe_dispute_id: str
    charge_id: str | None
    payment_intent_id: str | None
    amount: int
    currency: str
    reason: str | None
    status: str
    is_inquiry: bool
    is_charge_refundable: bool
    evidence_due_by: datetime | None
    evidence_submission_count: int
    livemode: bool
    created: datetime | None
    network: str | None = None  # the card's brand: `visa`, `mastercard`, ...
    network_reason_code: str | None = None
    submission_method: str | None = None  # `manual`, `smart_disputes`, `not_submitted`
    intended_submission_method: str | None = None
    enhanced_eligibility: dict[str, Any] | None = None


def find_dispute(session: Session, *, dispute_id: str) -> Dispute | None:
    return session.scalar(select(Dispute).where(Dispute.stripe_dispute_id == dispute_id))


def lock_dispute_row(
    session: Session, *, state: DisputeState, as_of: datetime
) -> tuple[Dispute, bool]:
    """The dispute's row, inserted (with `as_of`) the first time it is met and locked until the
    transaction ends; (row, created)."""
    return insert_or_lock(
        session,
        Dispute,
        key=Dispute.stripe_dispute_id,
        values={
            "stripe_dispute_id": state.stripe_dispute_id,
            "amount": state.amount,
            "currency": state.currency,
            "status": state.status,
            "is_inquiry": state.is_inquiry,
            "state_as_of": as_of,
        },
    )


def store_state(session: Session, row: Dispute, *, state: DisputeState, as_of: datetime) -> None:
    """Write the state over the row; ids Stripe left out keep their stored value."""
    row.charge_id = state.charge_id or row.charge_id
    row.payment_intent_id = state.payment_intent_id or row.payment_intent_id
    row.amount, row.currency, row.reason = state.amount, state.currency, state.reason
    row.status, row.is_inquiry = state.status, state.is_inquiry
    row.is_charge_refundable = state.is_charge_refundable
    row.evidence_due_by = state.evidence_due_by
    row.evidence_submission_count = state.evidence_submission_count
    row.livemode, row.stripe_created = state.livemode, state.created
    row.network = state.network or row.network
    row.network_reason_code = state.network_reason_code or row.network_reason_code
    row.submission_method = state.submission_method or row.submission_method
    row.intended_submission_method = (
        state.intended_submission_method or row.intended_submission_method
    )
    row.enhanced_eligibility = state.enhanced_eligibility or row.enhanced_eligibility
    row.state_as_of = max(row.state_as_of, as_of)
    session.flush()


def record_status_change(
    session: Session,
    row: Dispute,
    *,
    from_status: str | None,
    cause: DisputeCause,
    stripe_event_id: str | None,
) -> None:
    """A history row: the dispute's status changed from `from_status` to its current one."""
    session.add(
        DisputeStatusChange(
            dispute_id=row.id,
            from_status=from_status,
            to_status=row.status,
            cause=cause,
            stripe_event_id=stripe_event_id,
            state_as_of=row.state_as_of,
        )
    )
    session.flush()


def link(
    session: Session, dispute: Dispute, *, account_id: int | None, grant_id: int | None
) -> None:
    """Attach the dispute to its account and to the grant its payment bought (once known)."""
    dispute.account_id = dispute.account_id or account_id
    dispute.grant_entry_id = dispute.grant_entry_id or grant_id
    session.flush()


def record_funds_movement(
    session: Session,
    *,
    dispute: Dispute,
    kind: FundsMovement,
    amount: int,
    fee: int,
    currency: str,
    balance_transaction_id: str | None,
    stripe_event_id: str | None,
) -> bool:
    """Record money Stripe moved for the dispute, once per kind; True if it is new."""
    return (
        session.execute(
            insert(DisputeFundsMovement)
            .values(
                dispute_id=dispute.id,
                kind=kind,
                amount=amount,
                fee=fee,
                currency=currency,
                balance_transaction_id=balance_transaction_id,
                stripe_event_id=stripe_event_id,
            )
            .on_conflict_do_nothing(constraint="uq_dispute_funds_movements_kind")
            .returning(DisputeFundsMovement.id)
        ).scalar_one_or_none()
        is not None
    )


def list_disputes(
    session: Session, *, status: str | None = None, account_id: int | None = None, limit: int = 100
) -> list[Dispute]:
    query = select(Dispute).order_by(Dispute.id.desc()).limit(limit)
    if status:
        query = query.where(Dispute.status == status)
    if account_id is not None:
        query = query.where(Dispute.account_id == account_id)
    return list(session.scalars(query))


def awaiting_response(session: Session, *, due_before: datetime, now: datetime) -> list[Dispute]:
    """Disputes nobody has answered whose evidence is due between now and `due_before`."""
    return list(
        session.scalars(
            select(Dispute)
            .where(
                Dispute.status.in_(AWAITING_RESPONSE),
                Dispute.evidence_submission_count == 0,
                Dispute.evidence_due_by > now,
                Dispute.evidence_due_by <= due_before,
            )
            .order_by(Dispute.evidence_due_by)
        )
    )
