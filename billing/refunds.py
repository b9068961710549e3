"""`charge.refunded`: store what has been refunded of the charge (a fact about its payment),
then bring the payment's ledger to what its facts say (`billing.settlement`): the refunded
share of what it bought (a pack, a period, the upgrades its invoice paid for) is taken back.

The amount is the charge's cumulative `amount_refunded`, which every API version sends (the
list of refunds is not in the payload since 2022-11-15); the largest seen is kept, so partial
refunds add up to the whole and a late event for a smaller amount takes nothing. A refund met
before the purchase it refunds waits in `payment_refunds`: granting the purchase settles it.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from billing.accounts import adopt_customer
from billing.context import BillingContext
from billing.events import StripeEvent
from billing.payments import invoice_of_payment
from billing.upgrades import settle_payment
from core.stripe_objects import object_id
from db import ledger
from db.payment_facts import record_refund

log = logging.getLogger("billing.refunds")


def charge_refunded(session: Session, ctx: BillingContext, event: StripeEvent) -> None:
    """Record the refund, then settle the payment it belongs to."""
    charge = event.object
    charge_id, amount = charge["id"], int(charge.get("amount") or 0)
    refunded = int(charge.get("amount_refunded") or 0)
    if event.customer_id:
        adopt_customer(session, ctx, customer_id=event.customer_id, source=charge)
    intent = object_id(charge.get("payment_intent"))
    # Old API versions name the invoice on the charge; newer ones only Stripe knows, and it
    # is only worth asking when the payment's own ids find nothing.
    invoice_id = object_id(charge.get("invoice"))
    if invoice_id is None and not ledger.grants_of_payment(
        session, payment_intent_id=intent, charge_id=charge_id
    ):
        invoice_id = invoice_of_payment(ctx, intent)
    if amount <= 0 or refunded <= 0:
        log.info("refund of %s: nothing refunded", charge_id)
        return
    record_refund(
        session,
        charge_id=charge_id,
        payment_intent_id=intent,
        invoice_id=invoice_id,
        amount=amount,
        amount_refunded=refunded,
        currency=charge.get("currency"),
    )
    settle_payment(
        session,
        ctx,
        payment_intent_id=intent,
        charge_id=charge_id,
        invoice_id=invoice_id,
        stripe_event_id=event.id,
    )
