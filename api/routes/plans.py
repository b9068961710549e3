"""`GET /api/billing/plans`: the public plan catalogue."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from core.plans import get_catalogue

router = APIRouter(tags=["billing"])


class PlanOut(BaseModel):
    id: str
    name: str
    monthly_credits: int
    price_id: str | None  # the Stripe price (or legacy plan) id of this mode; null for free


class CreditPackOut(BaseModel):
    id: str
    name: str
    credits: int
    amount: int  # minor units of `currency`
    currency: str


class Catalogue(BaseModel):
    plans: list[PlanOut]
    packs: list[CreditPackOut]


@router.get("/api/billing/plans", response_model=Catalogue)
def list_plans() -> Catalogue:
    """Every plan with its monthly credits and Stripe price, and the one-time credit packs."""
    catalogue = get_catalogue()
    return Catalogue(
        plans=[
            PlanOut(id=p.id, name=p.name, monthly_credits=p.monthly_credits, price_id=p.price_id)
            for p in catalogue.plans.values()
        ],
        packs=[
            CreditPackOut(
                id=p.id, name=p.name, credits=p.credits, amount=p.amount, currency=p.currency
            )
            for p in catalogue.packs.values()
        ],
    )
