"""Expired Checkout Sessions, each kept once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.models import CheckoutExpiration


def record_expiration(
    session: Session,
    *,
    checkout_session_id: str,
    account_id: int | None,
    mode: str | None,
    item: str | None,
    amount_total: int | None,
    currency: str | None,
    promotions_consent: bool,
    expired_at: datetime | None,
) -> bool:
    """Keep the expired session unless kept before; whether it was new."""
    return (
        session.execute(
            insert(CheckoutExpiration)
            .values(
                stripe_checkout_session_id=checkout_session_id,
                account_id=account_id,
                mode=mode,
                item=item,
                amount_total=amount_total,
                currency=currency,
                promotions_consent=promotions_consent,
                expired_at=expired_at,
            )
            .on_conflict_do_nothing(index_elements=[CheckoutExpiration.stripe_checkout_session_id])
            .returning(CheckoutExpiration.id)
        ).scalar_one_or_none()
        is not None
    )


def expired_checkouts(session: Session, *, account_id: int) -> int:
    """How many of the account's Checkout Sessions expired unpaid."""
    return int(
        session.scalar(select(func.count()).where(CheckoutExpiration.account_id == account_id)) or 0
    )
