"""What several handlers need: the Stripe client, adopting a customer, reporting."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import sentry_sdk
import stripe
from sqlalchemy.orm import Session

from core.plans import Catalogue, Plan, get_catalogue
from core.settings import get_settings
from core.stripe_client import make_stripe_client
from core.stripe_objects import StripeDict, customer_email, metadata_user_id, object_id
from db.accounts import ensure_account, fill_missing_contact, update_contact
from db.models import Account
from tasks.events.event import StripeEvent

log = logging.getLogger("billing.events")


@lru_cache(maxsize=1)
def stripe_client() -> stripe.StripeClient | None:
    """The process's Stripe client; None while no key is set (development), so handlers
    work from the event alone."""
    return make_stripe_client(get_settings())


def catalogue() -> Catalogue:
    return get_catalogue()


def event_time(event: StripeEvent) -> datetime:
    """When Stripe made the event: the ordering guard's clock."""
    return event.created or datetime.now(UTC)


def fetch_subscription(subscription_id: str) -> StripeDict | None:
    client = stripe_client()
    if client is None:
        return None
    return retrieve_or_none(lambda: client.v1.subscriptions.retrieve(subscription_id))


def fetch_customer(customer_id: str) -> StripeDict | None:
    client = stripe_client()
    if client is None:
        return None
    return retrieve_or_none(lambda: client.v1.customers.retrieve(customer_id))


def retrieve_or_none(call: Callable[[], Any]) -> StripeDict | None:
    """Stripe's object as a dict; None when Stripe does not know it (or, like an old API
    version or a fake, has no such route). Lost connections and 5xx still raise: retried."""
    try:
        return call().to_dict()
    except stripe.InvalidRequestError as exc:
        if exc.http_status in (400, 404):
            return None
        raise


def invoice_of_payment(client: stripe.StripeClient | None, intent: str | None) -> str | None:
    """The invoice a payment intent paid. Since 2025-03-31.basil neither the invoice nor the
    charge names the other in a webhook (`invoice.payments` is includable), so Stripe's
    invoice payments are asked."""
    if client is None or intent is None:
        return None
    payments = retrieve_or_none(
        lambda: client.v1.invoice_payments.list(
            params={"payment": {"type": "payment_intent", "payment_intent": intent}, "limit": 1}
        )
    )
    data = (payments or {}).get("data") or []
    return object_id(data[0].get("invoice")) if data else None


def adopt_customer(
    session: Session,
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
        customer = fetch_customer(customer_id)
        if customer and not customer.get("deleted"):
            email, user = customer_email(customer), metadata_user_id(customer)
            update_contact(session, account, email=email, user_id=user, as_of=None)
    return account


def plan_for_price(price_id: str | None, *, where: str) -> Plan | None:
    """The catalogue's plan of a price; a price that is not ours is reported, not guessed."""
    plan = catalogue().plan_for_price(price_id)
    if plan is None and price_id:
        report_unknown_price(price_id, where=where)
    return plan


def report_unknown_price(price_id: str, *, where: str) -> None:
    log.warning("price %s (%s) is not in the plan catalogue: stored, no credits", price_id, where)
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("stripe_price_id", price_id)
        sentry_sdk.capture_message(f"Unknown Stripe price {price_id} in {where}", "warning")
