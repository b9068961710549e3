"""Admin API over disputes: list them, stage or submit text evidence, or concede."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

import stripe
from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from api.deps import AdminDep, SessionDep
from db.disputes import CLOSED_STATUSES, DisputeCause, find_dispute, list_disputes
from db.models import Account, Dispute
from tasks.events.handlers.disputes import apply_dispute

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/admin/disputes", tags=["admin"], dependencies=[AdminDep])

MAX_LIMIT = 500

# Stripe's text evidence fields (files are uploaded in the dashboard).
EvidenceField = Literal[
    "access_activity_log",
    "billing_address",
    "cancellation_policy_disclosure",
    "cancellation_rebuttal",
    "customer_email_address",
    "customer_name",
    "customer_purchase_ip",
    "duplicate_charge_explanation",
    "product_description",
    "refund_policy_disclosure",
    "refund_refusal_explanation",
    "service_date",
    "shipping_address",
    "shipping_carrier",
    "shipping_date",
    "shipping_tracking_number",
    "uncategorized_text",
]


class DisputeOut(BaseModel):
    id: str
    status: str
    is_inquiry: bool
    amount: int  # minor units of `currency`
    currency: str
    reason: str | None
    charge: str | None
    payment_intent: str | None
    customer: str | None
    linked: bool  # matched to the credit grant its payment bought
    evidence_due_by: datetime | None
    evidence_submissions: int

    @classmethod
    def of(cls, row: Dispute, customer: str | None) -> DisputeOut:
        return cls(
            id=row.stripe_dispute_id,
            status=row.status,
            is_inquiry=row.is_inquiry,
            amount=row.amount,
            currency=row.currency,
            reason=row.reason,
            charge=row.charge_id,
            payment_intent=row.payment_intent_id,
            customer=customer,
            linked=row.linked,
            evidence_due_by=row.evidence_due_by,
            evidence_submissions=row.evidence_submission_count,
        )


class DisputeList(BaseModel):
    items: list[DisputeOut]


class EvidenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    evidence: dict[EvidenceField, Annotated[str, Field(max_length=20_000)]] = Field(
        min_length=1, description="Text evidence, by Stripe's evidence field name."
    )
    submit: bool = Field(
        default=False, description="Submit to the bank now; otherwise only stage it."
    )


def _out(session: SessionDep, row: Dispute) -> DisputeOut:
    account = session.get(Account, row.account_id) if row.account_id else None
    return DisputeOut.of(row, account.stripe_customer_id if account else None)


@router.get("", response_model=DisputeList)
def get_disputes(
    session: SessionDep,
    status: Annotated[str | None, Query(max_length=50)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> DisputeList:
    """Disputes, newest first, optionally of one status (`needs_response`, `won`, ...)."""
    return DisputeList(
        items=[_out(session, d) for d in list_disputes(session, status=status, limit=limit)]
    )


@router.post("/{dispute_id}/evidence", response_model=DisputeOut)
def stage_evidence(
    request: Request, session: SessionDep, dispute_id: str, body: EvidenceIn
) -> DisputeOut:
    """Stage text evidence with `Dispute.modify`, and submit it when `submit` is true."""
    client = _open_dispute_client(request, session, dispute_id)
    return _apply(
        session,
        client,
        lambda: client.v1.disputes.update(
            dispute_id, params={"evidence": dict(body.evidence), "submit": body.submit}
        ),
    )


@router.post("/{dispute_id}/accept", response_model=DisputeOut)
def accept_dispute(request: Request, session: SessionDep, dispute_id: str) -> DisputeOut:
    """Concede the dispute with `Dispute.close`: it is lost, and its hold stays."""
    client = _open_dispute_client(request, session, dispute_id)
    return _apply(session, client, lambda: client.v1.disputes.close(dispute_id))


def _open_dispute_client(
    request: Request, session: SessionDep, dispute_id: str
) -> stripe.StripeClient:
    """The app's Stripe client, once the dispute is known to exist and still be open."""
    row = find_dispute(session, dispute_id=dispute_id)
    if row is None:
        raise HTTPException(404, f"No dispute {dispute_id}.")
    if row.status in CLOSED_STATUSES:
        raise HTTPException(409, f"Dispute {dispute_id} is already closed ({row.status}).")
    client: stripe.StripeClient | None = request.app.state.stripe
    if client is None:
        raise HTTPException(503, "Stripe is not configured: set STRIPE_SECRET_KEY_TEST/_LIVE.")
    return client


def _apply(session: SessionDep, client: stripe.StripeClient, call: Callable[[], Any]) -> DisputeOut:
    """Call Stripe, then store its answer through the same rules as the webhooks."""
    try:
        dispute = call().to_dict()
    except stripe.InvalidRequestError as exc:
        message = exc.user_message or str(exc)
        status = 409 if "closed" in message.lower() else 400
        raise HTTPException(status, message) from None
    except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
        log.warning("Stripe unavailable for a dispute action: %s", exc)
        raise HTTPException(
            503, "Stripe is unavailable; try again.", {"Retry-After": "5"}
        ) from None
    except stripe.StripeError as exc:
        log.error("Stripe refused a dispute action: %s", exc)
        raise HTTPException(502, "Stripe could not do it; see the logs.") from None
    result = apply_dispute(
        session,
        dispute=dispute,
        as_of=None,  # Stripe's answer to our call: its state now
        cause=DisputeCause.API,
        stripe_event_id=None,
        client=client,
    )
    session.commit()
    return _out(session, result.dispute)
