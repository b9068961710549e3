"""`charge.refunded`: take back the credits the payment granted, in proportion to the amount
refunded, once for each refunded amount.

The key is the charge and its cumulative `amount_refunded`, which every API version sends
(the list of refunds is not in the payload since 2022-11-15). Each entry takes the
difference between what the refunds so far should have taken and what was taken, so partial
refunds add up to the whole, and a late event for a smaller amount takes nothing.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.stripe_objects import object_id
from db import ledger
from db.models import CreditKind
from tasks.events.event import StripeEvent
from tasks.events.handlers.common import (
    adopt_customer,
    invoice_of_payment,
    log,
    stripe_client,
)


def charge_refunded(session: Session, event: StripeEvent) -> None:
    charge = event.object
    charge_id, amount = charge["id"], int(charge.get("amount") or 0)
    refunded = int(charge.get("amount_refunded") or 0)
    if event.customer_id:
        adopt_customer(session, customer_id=event.customer_id, source=charge)
    grant = ledger.find_grant_of_payment(
        session, payment_intent_id=object_id(charge.get("payment_intent")), charge_id=charge_id
    )
    if grant is None:
        # Old API versions name the invoice on the charge; newer ones only Stripe knows.
        intent = object_id(charge.get("payment_intent"))
        invoice_id = object_id(charge.get("invoice")) or invoice_of_payment(stripe_client(), intent)
        grant = invoice_id and ledger.find_entry(
            session, kind=CreditKind.PLAN_CREDITS, source_id=invoice_id
        )
    if not grant or amount <= 0 or refunded <= 0:
        log.info("refund of %s: no credit grant to take back", charge_id)
        return
    should_have_taken = grant.amount * min(refunded, amount) // amount
    taken = -ledger.sum_by_source_prefix(session, kind=CreditKind.REFUND, prefix=f"{charge_id}:")
    if should_have_taken <= taken:
        return
    ledger.add_entry(
        session,
        account_id=grant.account_id,
        kind=CreditKind.REFUND,
        source_id=f"{charge_id}:{refunded}",
        amount=-(should_have_taken - taken),
        payment_intent_id=object_id(charge.get("payment_intent")),
        charge_id=charge_id,
        stripe_event_id=event.id,
        description=f"refund of {refunded} of {amount} {charge.get('currency', '')}".strip(),
    )
