"""The Stripe customer of a host-application user: found, checked with Stripe, or created.

Every customer object Stripe returns here is applied to the account (email and
`metadata.user_id`, as Stripe has them now): every read of a customer object links its
user, so a user's account never depends on which event happened to arrive first."""

from __future__ import annotations

from typing import Any

import stripe
from sqlalchemy.orm import Session
from stripe.params import CustomerCreateParams

from billing.context import BillingContext
from core.stripe_objects import customer_email, metadata_user_id
from db.accounts import account_of_user, ensure_account, update_contact
from db.locks import advisory_lock
from db.models import Account


def existing_customer(session: Session, ctx: BillingContext, *, user_id: str) -> Account | None:
    """The user's account if Stripe still has its customer; None if there is none yet or
    Stripe deleted it."""
    account = account_of_user(session, user_id=user_id)
    if account is None:
        return None
    customer = _live_customer(ctx.require_stripe(), account.stripe_customer_id)
    if customer is None:
        return None
    _apply(session, account, customer)
    return account


def get_or_create_customer(
    session: Session, ctx: BillingContext, *, user_id: str, email: str | None
) -> Account:
    """The user's account, with a Stripe customer that exists (`metadata.user_id` = the user).

    A user lock, held until the caller's transaction ends, keeps two first requests of one
    user from creating two customers; the idempotency key does the same across a retry."""
    client = ctx.require_stripe()
    advisory_lock(session, f"user:{user_id}")
    account = account_of_user(session, user_id=user_id)
    replacing = None
    if account is not None:
        customer = _live_customer(client, account.stripe_customer_id)
        if customer is not None:
            _apply(session, account, customer)
            return account
        replacing = account.stripe_customer_id
    params: CustomerCreateParams = {"metadata": {"user_id": user_id}}
    if email:
        params["email"] = email
    created = client.v1.customers.create(
        params=params,
        options={"idempotency_key": f"customer-for-user:{user_id}:{replacing or 'first'}"},
    ).to_dict()
    account, _ = ensure_account(session, customer_id=created["id"])
    _apply(session, account, created)
    return account


def _live_customer(client: stripe.StripeClient, customer_id: str) -> dict[str, Any] | None:
    """Stripe's customer object; None when Stripe deleted it (or never had it)."""
    try:
        customer = client.v1.customers.retrieve(customer_id).to_dict()
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404:
            return None
        raise
    return None if customer.get("deleted") else customer


def _apply(session: Session, account: Account, customer: dict[str, Any]) -> None:
    # Stripe's own object, as it is now.
    update_contact(
        session,
        account,
        email=customer_email(customer),
        user_id=metadata_user_id(customer),
        as_of=None,
    )


def portal_url(ctx: BillingContext, *, account: Account) -> str:
    """A Stripe customer portal session of the account's customer, returning to the app."""
    portal = ctx.require_stripe().v1.billing_portal.sessions.create(
        params={"customer": account.stripe_customer_id, "return_url": ctx.settings.app_billing_url}
    )
    return portal.url
