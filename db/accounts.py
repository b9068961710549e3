"""Accounts: one per Stripe customer, linked to a host-application user when known."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.models import Account


def find_account(session: Session, *, customer_id: str) -> Account | None:
    return session.scalar(select(Account).where(Account.stripe_customer_id == customer_id))


def ensure_account(session: Session, *, customer_id: str) -> tuple[Account, bool]:
    """The customer's account, created if this is the first time we meet it; (account, new)."""
    account_id = session.execute(
        insert(Account)
        .values(stripe_customer_id=customer_id)
        .on_conflict_do_nothing(index_elements=[Account.stripe_customer_id])
        .returning(Account.id)
    ).scalar_one_or_none()
    account = find_account(session, customer_id=customer_id)
    assert account is not None  # inserted now, or before
    return account, account_id is not None


def update_contact(
    session: Session, account: Account, *, email: str | None, user_id: str | None
) -> None:
    """Keep what Stripe says: the newest email, and the user the customer belongs to."""
    if email and account.email != email:
        account.email = email
    if user_id and account.user_id != user_id:
        account.user_id = user_id
    session.flush()
