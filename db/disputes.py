"""Disputes: Stripe's state under the ordering guard, the status history, funds movements."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from core.stripe_objects import StripeDict, object_id, timestamp
from db.models import Dispute, DisputeFundsMovement, DisputeStatusChange

# An inquiry (a "retrieval request") asks questions; no money has moved yet.
INQUIRY_STATUSES = frozenset({"warning_needs_response", "warning_under_review", "warning_closed"})
# Final: a late `updated` never reopens one of these.
CLOSED_STATUSES = frozenset({"won", "lost", "warning_closed", "prevented"})
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
    """What Stripe says of a dispute at one moment, in any API version."""

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

    @classmethod
    def from_stripe(cls, dispute: StripeDict) -> DisputeState:
        if not dispute.get("id") or not dispute.get("status"):
            raise ValueError("dispute object lacks its id or status")
        status = dispute["status"]
        card = (dispute.get("payment_method_details") or {}).get("card") or {}
        evidence = dispute.get("evidence_details") or {}
        return cls(
            stripe_dispute_id=dispute["id"],
            charge_id=object_id(dispute.get("charge")),
            payment_intent_id=object_id(dispute.get("payment_intent")),
            amount=int(dispute.get("amount") or 0),
            currency=dispute.get("currency") or "usd",
            reason=dispute.get("reason"),
            status=status,
            # Newer API versions say it outright; every version marks inquiries by status.
            is_inquiry=status in INQUIRY_STATUSES or card.get("case_type") == "inquiry",
            is_charge_refundable=bool(dispute.get("is_charge_refundable")),
            evidence_due_by=timestamp(evidence.get("due_by")),
            evidence_submission_count=int(evidence.get("submission_count") or 0),
            livemode=bool(dispute.get("livemode")),
            created=timestamp(dispute.get("created")),
        )


@dataclass(slots=True)
class DisputeSync:
    dispute: Dispute
    applied: bool  # False: what is stored is newer, or the dispute is closed
    created: bool
    previous_status: str | None

    @property
    def status_changed(self) -> bool:
        return self.applied and self.previous_status != self.dispute.status

    @property
    def closed_now(self) -> bool:
        return self.status_changed and self.dispute.status in CLOSED_STATUSES


def find_dispute(session: Session, *, dispute_id: str) -> Dispute | None:
    return session.scalar(select(Dispute).where(Dispute.stripe_dispute_id == dispute_id))


def sync_dispute(
    session: Session,
    *,
    state: DisputeState,
    as_of: datetime | None,
    cause: DisputeCause,
    stripe_event_id: str | None = None,
) -> DisputeSync:
    """Store the state unless what is stored is newer (equal times apply); a closed dispute
    stays closed. Each change of status is recorded with its cause. `as_of` None: Stripe's
    answer right now, newer than anything stored (see `db.subscriptions.sync_subscription`)."""
    authoritative = as_of is None
    # Stripe's `created` has whole seconds: an event of the same second as our fetch applies.
    as_of = as_of or datetime.now(UTC).replace(microsecond=0)
    inserted = session.execute(
        insert(Dispute)
        .values(
            stripe_dispute_id=state.stripe_dispute_id,
            amount=state.amount,
            currency=state.currency,
            status=state.status,
            is_inquiry=state.is_inquiry,
            state_as_of=as_of,
        )
        .on_conflict_do_nothing(index_elements=[Dispute.stripe_dispute_id])
        .returning(Dispute.id)
    ).scalar_one_or_none()
    row = session.scalar(
        select(Dispute)
        .where(Dispute.stripe_dispute_id == state.stripe_dispute_id)
        .with_for_update()
        # A caller's copy from before the lock must not stand in for the committed row.
        .execution_options(populate_existing=True)
    )
    assert row is not None
    created = inserted is not None
    previous = None if created else row.status
    stale = not authoritative and as_of < row.state_as_of
    if not created and (stale or _reopens(row.status, state.status)):
        return DisputeSync(dispute=row, applied=False, created=False, previous_status=previous)
    row.charge_id = state.charge_id or row.charge_id
    row.payment_intent_id = state.payment_intent_id or row.payment_intent_id
    row.amount, row.currency, row.reason = state.amount, state.currency, state.reason
    row.status, row.is_inquiry = state.status, state.is_inquiry
    row.is_charge_refundable = state.is_charge_refundable
    row.evidence_due_by = state.evidence_due_by
    row.evidence_submission_count = state.evidence_submission_count
    row.livemode, row.stripe_created = state.livemode, state.created
    row.state_as_of = max(row.state_as_of, as_of)
    if created or previous != state.status:
        session.add(
            DisputeStatusChange(
                dispute_id=row.id,
                from_status=previous,
                to_status=state.status,
                cause=cause,
                stripe_event_id=stripe_event_id,
                state_as_of=row.state_as_of,
            )
        )
    session.flush()
    return DisputeSync(dispute=row, applied=True, created=created, previous_status=previous)


def _reopens(stored: str, incoming: str) -> bool:
    return stored in CLOSED_STATUSES and incoming not in CLOSED_STATUSES


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
