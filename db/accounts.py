"""Accounts: one per Stripe customer, linked to a host-application user when known."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.models import Account

# Built once: every event reads its customer's account (docs/decisions/0007).
_ACCOUNT_OF_CUSTOMER = select(Account).where(Account.stripe_customer_id == bindparam("customer_id"))


def find_account(session: Session, *, customer_id: str) -> Account | None:
    return session.scalar(_ACCOUNT_OF_CUSTOMER, {"customer_id": customer_id})


def ensure_account(session: Session, *, customer_id: str) -> tuple[Account, bool]:
    """The customer's account, created if this is the first time we meet it; (account, new)."""
    # Read first: nearly every event is of a customer met before (one round trip, not two).
    known = find_account(session, customer_id=customer_id)
    if known is not None:
        return known, False
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
    session: Session,
    account: Account,
    *,
    email: str | None,
    user_id: str | None,
    as_of: datetime | None,
) -> None:
    """What a customer object says (`as_of`: its event's `created`; None: fetched now). An
    older customer object than the one applied changes nothing, so a late `customer.updated`
    never brings an old address back."""
    if account.deleted_at is not None:
        return  # deleted in Stripe: nothing links its user again
    if as_of is None:
        as_of = datetime.now(UTC).replace(microsecond=0)
    elif account.contact_as_of is not None and as_of < account.contact_as_of:
        return
    account.contact_as_of = as_of
    if email:
        account.email = email
    if user_id:
        account.user_id = user_id
    session.flush()


def fill_missing_contact(
    session: Session, account: Account, *, email: str | None, user_id: str | None
) -> None:
    """What another object says of its customer (an invoice's `customer_email`, a Checkout's
    `client_reference_id`): a snapshot, used only where the account knows nothing yet."""
    if account.deleted_at is not None:
        return  # a late event of a deleted customer must not link its user again
    # Flushed only when something was filled: most events' customers are known already.
    filled = False
    if email and not account.email:
        account.email, filled = email, True
    if user_id and not account.user_id:
        account.user_id, filled = user_id, True
    if filled:
        session.flush()


def mark_deleted(session: Session, account: Account, *, as_of: datetime) -> None:
    """The customer was deleted in Stripe: unlink the user, keep everything else."""
    if account.deleted_at is None:
        account.deleted_at = as_of
    account.user_id = None
    session.flush()


def account_of_user(session: Session, *, user_id: str) -> Account | None:
    """The host-application user's account: the newest, when a deleted customer was replaced."""
    return session.scalar(
        select(Account).where(Account.user_id == user_id).order_by(Account.id.desc()).limit(1)
    )
