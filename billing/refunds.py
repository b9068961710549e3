"""`charge.refunded`: take back the credits the payment granted (a pack, a period, the upgrades
its invoice paid for), in proportion to the amount refunded, once for each refunded amount.

The key is the charge and its cumulative `amount_refunded`, which every API version sends
(the list of refunds is not in the payload since 2022-11-15). Each entry takes the
difference between what the refunds so far should have taken and what was taken, so partial
refunds add up to the whole, and a late event for a smaller amount takes nothing.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from billing.accounts import adopt_customer
from billing.context import BillingContext
from billing.events import StripeEvent
from billing.payments import invoice_of_payment
from core.stripe_objects import object_id
from db import ledger
from db.models import CreditKind

log = logging.getLogger("billing.refunds")


def charge_refunded(session: Session, ctx: BillingContext, event: StripeEvent) -> None:
    """Take back the refunded share of what the charge's payment granted, once per amount."""
    charge = event.object
    charge_id, amount = charge["id"], int(charge.get("amount") or 0)
    refunded = int(charge.get("amount_refunded") or 0)
    if event.customer_id:
        adopt_customer(session, ctx, customer_id=event.customer_id, source=charge)
    intent = object_id(charge.get("payment_intent"))
    grants = ledger.grants_of_payment(session, payment_intent_id=intent, charge_id=charge_id)
    if not grants:
        # Old API versions name the invoice on the charge; newer ones only Stripe knows.
        invoice_id = object_id(charge.get("invoice")) or invoice_of_payment(ctx, intent)
        grants = ledger.grants_of_invoice(session, invoice_id=invoice_id) if invoice_id else []
    if not grants or amount <= 0 or refunded <= 0:
        log.info("refund of %s: no credit grant to take back", charge_id)
        return
    # Everything the payment bought: a renewal that carried an upgrade's proration paid both.
    granted = sum(grant.amount for grant in grants)
    should_have_taken = granted * min(refunded, amount) // amount
    taken = -ledger.sum_by_source_prefix(session, kind=CreditKind.REFUND, prefix=f"{charge_id}:")
    if should_have_taken <= taken:
        return
    ledger.add_entry(
        session,
        account_id=grants[0].account_id,
        kind=CreditKind.REFUND,
        source_id=f"{charge_id}:{refunded}",
        amount=-(should_have_taken - taken),
        payment_intent_id=intent,
        charge_id=charge_id,
        stripe_event_id=event.id,
        description=f"refund of {refunded} of {amount} {charge.get('currency', '')}".strip(),
    )
