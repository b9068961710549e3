"""`GET /api/admin/customers/{cus_id}`: one customer's plan, subscription, ledger, disputes;
`GET /api/admin/customers/{cus_id}/subscription-history`: every change of its subscriptions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from api.deps import AdminDep, NoNulParamsDep, SessionDep
from api.schemas import (
    VALIDATION_ERROR,
    AdminSubscriptionHistory,
    CustomerLedgerEntryOut,
    CustomerOut,
    DisputeSummaryOut,
    SubscriptionSummaryOut,
)
from api.subscription_history import admin_history
from db import ledger
from db.accounts import find_account
from db.checkout_expirations import expired_checkouts
from db.disputes import list_disputes
from db.subscriptions import latest_subscription

MAX_DISPUTES = 500
MAX_HISTORY_PAGE = 500
MAX_CURSOR = 2**63 - 1  # a bigint id

router = APIRouter(
    prefix="/api/admin/customers",
    tags=["admin"],
    dependencies=[AdminDep, NoNulParamsDep],
    responses=VALIDATION_ERROR,
)


@router.get("/{customer_id}", response_model=CustomerOut)
def get_customer(session: SessionDep, customer_id: str) -> CustomerOut:
    """Everything the platform holds on one Stripe customer; the ledger is not paginated."""
    account = find_account(session, customer_id=customer_id)
    if account is None:
        raise HTTPException(404, f"No account for customer {customer_id}.")
    subscription = latest_subscription(session, account_id=account.id)
    entries = ledger.entries(session, account_id=account.id)
    disputes = list_disputes(session, account_id=account.id, limit=MAX_DISPUTES)
    return CustomerOut(
        stripe_customer_id=account.stripe_customer_id,
        user_id=account.user_id,
        email=account.email,
        plan=account.plan,
        subscription=None
        if subscription is None
        else SubscriptionSummaryOut.model_validate(subscription),
        credits_balance=sum(e.amount for e in entries),
        ledger=[CustomerLedgerEntryOut.model_validate(e) for e in entries],
        disputes=[DisputeSummaryOut.model_validate(d) for d in disputes],
        deleted_at=account.deleted_at,
        expired_checkouts=expired_checkouts(session, account_id=account.id),
    )


@router.get("/{customer_id}/subscription-history", response_model=AdminSubscriptionHistory)
def get_subscription_history(
    session: SessionDep,
    customer_id: str,
    cursor: Annotated[
        int | None, Query(ge=1, le=MAX_CURSOR, description="`next_cursor` of the last page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_HISTORY_PAGE)] = 100,
) -> AdminSubscriptionHistory:
    """Every change of the customer's subscriptions, newest first, with its cause (`event`,
    `reconciliation`, `api`) and the Stripe event that made it."""
    account = find_account(session, customer_id=customer_id)
    if account is None:
        raise HTTPException(404, f"No account for customer {customer_id}.")
    return admin_history(
        session, account_id=account.id, customer_id=customer_id, limit=limit, cursor=cursor
    )
