"""The Stripe customer of a host-application user: found, checked with Stripe, or created."""

from __future__ import annotations

import stripe
from sqlalchemy.orm import Session
from stripe.params import CustomerCreateParams

from api.auth import User
from core.stripe_objects import customer_email
from db.accounts import account_of_user, ensure_account, update_contact
from db.locks import advisory_lock
from db.models import Account


def existing_customer(
    session: Session, client: stripe.StripeClient, *, user: User
) -> Account | None:
    """The user's account if Stripe still has its customer; None if there is none yet or
    Stripe deleted it."""
    account = account_of_user(session, user_id=user.id)
    if account is None or _deleted_in_stripe(client, account.stripe_customer_id):
        return None
    return account


def get_or_create_customer(session: Session, client: stripe.StripeClient, *, user: User) -> Account:
    """The user's account, with a Stripe customer that exists (`metadata.user_id` = the user).

    A user lock, held until the caller's transaction ends, keeps two first requests of one
    user from creating two customers; the idempotency key does the same across a retry."""
    advisory_lock(session, f"user:{user.id}")
    account = account_of_user(session, user_id=user.id)
    replacing = None
    if account is not None:
        if not _deleted_in_stripe(client, account.stripe_customer_id):
            return account
        replacing = account.stripe_customer_id
    params: CustomerCreateParams = {"metadata": {"user_id": user.id}}
    if user.email:
        params["email"] = user.email
    customer = client.v1.customers.create(
        params=params,
        options={"idempotency_key": f"customer-for-user:{user.id}:{replacing or 'first'}"},
    )
    account, _ = ensure_account(session, customer_id=customer.id)
    # Stripe's own object, as it is now.
    update_contact(
        session, account, email=customer_email(customer.to_dict()), user_id=user.id, as_of=None
    )
    return account


def _deleted_in_stripe(client: stripe.StripeClient, customer_id: str) -> bool:
    try:
        customer = client.v1.customers.retrieve(customer_id)
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404:
            return True
        raise
    return bool(customer.to_dict().get("deleted"))
