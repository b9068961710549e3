"""Admin API over disputes: list them, stage or submit text evidence, or concede."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request

from api import operations
from api.audit import api_token_actor
from api.deps import AdminDep, BillingDep, NoNulParamsDep, SessionDep, SettingsDep, get_stripe
from api.schemas import (
    VALIDATION_ERROR,
    DisputeList,
    DisputeOut,
    DisputeRatesOut,
    EvidenceDraftOut,
    EvidenceIn,
    NetworkRateOut,
)
from billing import dispute_actions
from billing.dispute_actions import (
    DisputeClosed,
    DisputeNotFound,
    SmartDisputesInCharge,
    StripeRequired,
)
from billing.dispute_rates import month_of, network_rates, parse_month
from core.settings import Settings
from db.disputes import list_disputes
from db.models import Account, Dispute

router = APIRouter(
    prefix="/api/admin/disputes",
    tags=["admin"],
    dependencies=[AdminDep, NoNulParamsDep],
    responses=VALIDATION_ERROR,
)

MAX_LIMIT = 500


def _out(session: SessionDep, row: Dispute) -> DisputeOut:
    account = session.get(Account, row.account_id) if row.account_id else None
    customer = account.stripe_customer_id if account else None
    return DisputeOut.model_validate(row).model_copy(update={"customer": customer})


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


@router.get("/rates", response_model=DisputeRatesOut)
def get_dispute_rates(
    session: SessionDep,
    ctx: BillingDep,
    month: Annotated[str | None, Query(max_length=7, description="`YYYY-MM`; default: now")] = None,
) -> DisputeRatesOut:
    """Each monitored card network's ratio of the month (Visa VAMP, Mastercard ECP), from the
    payments, fraud warnings and disputes the platform has seen."""
    month = month or month_of(ctx.now())
    try:
        parse_month(month)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    rates = network_rates(session, ctx, month=month)
    return DisputeRatesOut(
        month=month,
        networks=[NetworkRateOut.model_validate(rate, from_attributes=True) for rate in rates],
    )


@router.get("/{dispute_id}/evidence-draft", response_model=EvidenceDraftOut)
def get_evidence_draft(
    request: Request, session: SessionDep, ctx: BillingDep, settings: SettingsDep, dispute_id: str
) -> EvidenceDraftOut:
    """The evidence the platform would submit, whether Visa CE 3.0 applies (and why), and
    whether Smart Disputes is in charge."""
    with _dispute_errors(request, settings):
        draft = dispute_actions.evidence_draft(session, ctx, dispute_id=dispute_id)
    return EvidenceDraftOut.model_validate(draft)


@router.post("/{dispute_id}/evidence", response_model=DisputeOut)
def stage_evidence(
    request: Request,
    session: SessionDep,
    ctx: BillingDep,
    settings: SettingsDep,
    dispute_id: str,
    body: EvidenceIn,
) -> DisputeOut:
    """Stage text evidence with `Dispute.modify`, and submit it when `submit` is true; or,
    with `use_draft`, submit the platform's draft (409 while Smart Disputes is in charge)."""
    with _dispute_errors(request, settings):
        if body.use_draft:
            row = operations.submit_draft(
                session, ctx, dispute_id=dispute_id, actor=api_token_actor(request)
            )
        else:
            assert body.evidence is not None  # the schema requires one of the two
            row = operations.submit_evidence(
                session,
                ctx,
                dispute_id=dispute_id,
                evidence=dict(body.evidence),
                submit=bool(body.submit),
                actor=api_token_actor(request),
            )
    return _out(session, row)


@router.post("/{dispute_id}/accept", response_model=DisputeOut)
def accept_dispute(
    request: Request, session: SessionDep, ctx: BillingDep, settings: SettingsDep, dispute_id: str
) -> DisputeOut:
    """Concede the dispute with `Dispute.close`: it is lost, and its hold stays."""
    with _dispute_errors(request, settings):
        row = operations.accept_dispute(
            session, ctx, dispute_id=dispute_id, actor=api_token_actor(request)
        )
    return _out(session, row)


@contextmanager
def _dispute_errors(request: Request, settings: Settings) -> Iterator[None]:
    """The billing rules' refusals as answers; Stripe's own errors go to the app's handler.
    Stripe is asked for only once the body is valid and the dispute known and open, so the
    Stripe dependency is not declared on the route (it would answer before validation)."""
    try:
        yield
    except DisputeNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except (DisputeClosed, SmartDisputesInCharge) as exc:
        raise HTTPException(409, str(exc)) from None
    except StripeRequired:
        get_stripe(request, settings)  # the app's one answer while Stripe is off: 503
        raise
