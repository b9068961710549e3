"""`GET /api/admin/customers/{cus_id}`: one customer's plan, subscription, ledger, disputes."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel

from api.deps import AdminDep, SessionDep
from db import ledger
from db.accounts import find_account
from db.disputes import list_disputes
from db.subscriptions import latest_subscription

MAX_DISPUTES = 500

router = APIRouter(prefix="/api/admin/customers", tags=["admin"], dependencies=[AdminDep])


class SubscriptionOut(BaseModel):
    id: str
    status: str
    price_id: str | None
    current_period_end: datetime | None
    cancel_at_period_end: bool


class LedgerEntryOut(BaseModel):
    amount: int  # credits: grants positive; holds, refunds and spending negative
    kind: str
    source_id: str
    created_at: datetime


class DisputeOut(BaseModel):
    id: str
    status: str
    amount: int
    reason: str | None
    evidence_due_by: datetime | None


class CustomerOut(BaseModel):
    stripe_customer_id: str
    user_id: str | None
    email: str | None
    plan: str
    subscription: SubscriptionOut | None
    credits_balance: int
    ledger: list[LedgerEntryOut]
    disputes: list[DisputeOut]


@router.get("/{customer_id}", response_model=CustomerOut)
def get_customer(session: SessionDep, customer_id: str) -> CustomerOut:
    """Everything the platform holds on one Stripe customer; the ledger is not paginated."""
    account = find_account(session, customer_id=customer_id)
    if account is None:
        raise HTTPException(404, f"No account for customer {customer_id}.")
    subscription = latest_subscription(session, account_id=account.id)
    entries = ledger.entries(session, account_id=account.id)
    return CustomerOut(
        stripe_customer_id=account.stripe_customer_id,
        user_id=account.user_id,
        email=account.email,
        plan=account.plan,
        subscription=None
        if subscription is None
        else SubscriptionOut(
            id=subscription.stripe_subscription_id,
            status=subscription.status,
            price_id=subscription.price_id,
            current_period_end=subscription.current_period_end,
            cancel_at_period_end=subscription.cancel_at_period_end,
        ),
        credits_balance=sum(e.amount for e in entries),
        ledger=[
            LedgerEntryOut(
                amount=e.amount, kind=e.kind, source_id=e.source_id, created_at=e.created_at
            )
            for e in entries
        ],
        disputes=[
            DisputeOut(
                id=d.stripe_dispute_id,
                status=d.status,
                amount=d.amount,
                reason=d.reason,
                evidence_due_by=d.evidence_due_by,
            )
            for d in list_disputes(session, account_id=account.id, limit=MAX_DISPUTES)
        ],
    )
