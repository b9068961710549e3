"""Purchase context for dispute evidence: who paid, with which card, from where.

The platform's own Checkout records the buyer's IP and device
(`db.purchases.record_checkout_context`). Each successful charge (`charge.succeeded`) is
stored with its card's fingerprint, brand and network, and the user id, Visa CE 3.0's
"customer account id"; once the Checkout that paid it completes (`checkout.session.completed`,
in either order) the charge takes that Checkout's IP and device (or the `buyer_ip` and
`device_fingerprint` metadata of a Checkout the host application opened itself). A renewal,
which no buyer clicks, inherits the user, and the card when its charge does not name one."""

from __future__ import annotations

import ipaddress
import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from billing.accounts import adopt_customer
from billing.context import BillingContext
from billing.events import StripeEvent
from billing.payments import invoice_of_payment
from core.stripe_objects import StripeDict, object_id, timestamp
from db.invoices import find_invoice_of_payment
from db.models import Account, PaymentRecord
from db.purchases import (
    checkout_context_of_payment,
    complete_checkout_context,
    has_recent_checkout,
    latest_card_of_account,
    record_checkout_context,
    records_of_payment,
    upsert_payment_record,
)

log = logging.getLogger("billing.purchases")

# A Checkout Session expires 24 hours after it is opened: a charge later than that is not its.
CHECKOUT_LIFETIME = timedelta(hours=24)


def charge_succeeded(session: Session, ctx: BillingContext, event: StripeEvent) -> None:
    """Store the charge with its card and the context of the Checkout that paid it."""
    charge = event.object
    if not charge.get("id") or charge.get("status") not in (None, "succeeded"):
        return
    account = None
    if event.customer_id:
        account = adopt_customer(session, ctx, customer_id=event.customer_id, source=charge)
    store_charge(session, ctx, charge=charge, account=account)


def store_charge(
    session: Session, ctx: BillingContext, *, charge: StripeDict, account: Account | None
) -> PaymentRecord:
    """The charge's payment record (also how the monitoring ratios learn a network)."""
    charge_id = charge["id"]
    intent = object_id(charge.get("payment_intent"))
    card = (charge.get("payment_method_details") or {}).get("card") or {}
    invoice_id = object_id(charge.get("invoice"))
    if invoice_id is None:
        stored = find_invoice_of_payment(session, payment_intent_id=intent, charge_id=charge_id)
        invoice_id = stored.stripe_invoice_id if stored else None
    context = checkout_context_of_payment(session, payment_intent_id=intent, invoice_id=invoice_id)
    paid_at = timestamp(charge.get("created")) or ctx.now()
    if context is None and invoice_id is None and _may_be_a_checkout(session, account, paid_at):
        # Newer API versions name neither side: only Stripe knows a subscription's first
        # invoice. A renewal (no Checkout of the user lately) is not worth the call.
        invoice_id = invoice_of_payment(ctx, intent)
        context = checkout_context_of_payment(
            session, payment_intent_id=None, invoice_id=invoice_id
        )
    values: dict[str, Any] = {
        "payment_intent_id": intent,
        "stripe_invoice_id": invoice_id,
        "account_id": account.id if account else None,
        "user_id": context.user_id if context else (account.user_id if account else None),
        "ip_address": context.ip_address if context else None,
        "device_fingerprint": context.device_fingerprint if context else None,
        "card_fingerprint": card.get("fingerprint"),
        "card_brand": card.get("brand"),
        "card_network": card.get("network") or card.get("brand"),
        "amount": int(charge.get("amount") or 0),
        "currency": charge.get("currency"),
        "description": charge.get("description"),
        "stripe_created": paid_at,
    }
    if not values["card_fingerprint"] and account is not None:
        earlier = latest_card_of_account(session, account_id=account.id)
        if earlier is not None:
            values.update(
                card_fingerprint=earlier.card_fingerprint,
                card_brand=earlier.card_brand,
                card_network=earlier.card_network,
            )
    return upsert_payment_record(session, charge_id=charge_id, values=values)


def _may_be_a_checkout(session: Session, account: Account | None, paid_at: datetime) -> bool:
    if account is None or account.user_id is None:
        return False
    since = paid_at - CHECKOUT_LIFETIME
    return has_recent_checkout(session, user_id=account.user_id, since=since)


def checkout_paid(session: Session, checkout: StripeDict) -> None:
    """A completed Checkout names its payment: the charges already stored take its context."""
    session_id = checkout.get("id")
    if not session_id:
        return
    intent = object_id(checkout.get("payment_intent"))
    invoice_id = object_id(checkout.get("invoice"))
    _context_from_metadata(session, checkout)
    context = complete_checkout_context(
        session, checkout_session_id=session_id, payment_intent_id=intent, invoice_id=invoice_id
    )
    if context is None:
        return
    for record in records_of_payment(session, payment_intent_id=intent, invoice_id=invoice_id):
        record.user_id = record.user_id or context.user_id
        record.ip_address = record.ip_address or context.ip_address
        record.device_fingerprint = record.device_fingerprint or context.device_fingerprint
    session.flush()


def _context_from_metadata(session: Session, checkout: StripeDict) -> None:
    """A Checkout the host application opened itself may carry the buyer's context in its
    metadata (`buyer_ip`, `device_fingerprint`): kept like the platform's own, unless the
    platform recorded the session itself."""
    metadata = checkout.get("metadata") or {}
    user_id = checkout.get("client_reference_id")
    ip, device = _ip(metadata.get("buyer_ip")), metadata.get("device_fingerprint") or None
    if not user_id or not (ip or device):
        return
    record_checkout_context(
        session,
        checkout_session_id=checkout["id"],
        user_id=str(user_id),
        ip_address=ip,
        device_fingerprint=str(device) if device else None,
    )


def _ip(value: object) -> str | None:
    try:
        return str(ipaddress.ip_address(str(value))) if value else None
    except ValueError:
        return None
