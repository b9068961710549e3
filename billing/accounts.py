"""Accounts: the platform's record of a Stripe customer and the user behind it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from billing.context import BillingContext
from billing.events import StripeEvent
from core.stripe_objects import StripeDict, customer_email, metadata_user_id
from db.accounts import ensure_account, fill_missing_contact, mark_deleted, update_contact
from db.models import Account


def fetch_customer(ctx: BillingContext, customer_id: str) -> StripeDict | None:
    return ctx.retrieve(lambda client: client.v1.customers.retrieve(customer_id))


def adopt_customer(
    session: Session,
    ctx: BillingContext,
    *,
    customer_id: str,
    source: StripeDict,
    user_id: str | None = None,
    as_of: datetime | None = None,
) -> Account:
    """The customer's account. A customer object (`as_of`: its event's time) sets the email
    and `metadata.user_id` under the ordering guard; any other object (an invoice, a
    Checkout with its `client_reference_id`) only fills what the account lacks. A customer met
    for the first time without them is looked up in Stripe."""
    if not customer_id:
        raise ValueError(f"{source.get('object', 'object')} {source.get('id')} names no customer")
    account, new = ensure_account(session, customer_id=customer_id)
    if source.get("object") == "customer":
        email, user = customer_email(source), metadata_user_id(source)
        update_contact(session, account, email=email, user_id=user, as_of=as_of)
        return account
    fill_missing_contact(session, account, email=customer_email(source), user_id=user_id)
    if new and (account.email is None or account.user_id is None):
        customer = fetch_customer(ctx, customer_id)
        if customer and not customer.get("deleted"):
            email, user = customer_email(customer), metadata_user_id(customer)
            update_contact(session, account, email=email, user_id=user, as_of=None)
    return account


def customer_changed(session: Session, ctx: BillingContext, event: StripeEvent) -> None:
    """`customer.created` / `customer.updated`: adopt the customer, link `metadata.user_id`."""
    adopt_customer(
        session, ctx, customer_id=event.customer_id or "", source=event.object, as_of=event.time
    )


def customer_deleted(session: Session, ctx: BillingContext, event: StripeEvent) -> None:
    """`customer.deleted`: the account is marked deleted and its user unlinked (the user may
    come back as a new customer); its ledger, invoices and history are kept for the audit."""
    account, _ = ensure_account(session, customer_id=event.customer_id or "")
    mark_deleted(session, account, as_of=event.time)
