"""`credit_note.created` and `credit_note.voided`: store the credit note (a fact about the
payment of the invoice it credits), then bring that payment's ledger to what its facts say
(`billing.settlement`).

A credit note that refunds money is the same refund as the `charge.refunded` it causes: its
refunds are stored by refund id and the settlement counts that money once. What it credits
otherwise (to the customer's balance, or paid out of band) takes back its own share, keyed by
the credit note id; voiding it gives that back. A credit note met before the invoice's grant
waits in `credit_notes`: granting the invoice settles it.

Where the refunds are: `refunds[]` (`{refund, amount_refunded}`) in newer API versions, a
single `refund` id in older ones, which refunds the whole credit note but what was paid out of
band (the older shape does not say how much went to the customer's balance).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from billing.accounts import adopt_customer
from billing.context import BillingContext
from billing.events import StripeEvent
from billing.upgrades import settle_payment
from core.stripe_objects import StripeDict, object_id
from db.payment_facts import VOID, record_credit_note

log = logging.getLogger("billing.credit_notes")


def credit_note_event(session: Session, ctx: BillingContext, event: StripeEvent) -> None:
    """Record the credit note (void for good once voided), then settle its invoice's payment."""
    note = event.object
    invoice_id = object_id(note.get("invoice"))
    if not note.get("id") or invoice_id is None:
        raise ValueError("credit note lacks its id or invoice")
    if event.customer_id:
        adopt_customer(session, ctx, customer_id=event.customer_id, source=note)
    voided = event.type == "credit_note.voided" or note.get("status") == VOID
    record_credit_note(
        session,
        credit_note_id=note["id"],
        invoice_id=invoice_id,
        status=VOID if voided else "issued",
        amount=int(note.get("amount") or 0),
        refunds=refunds_of(note),
        currency=note.get("currency"),
    )
    settle_payment(
        session,
        ctx,
        payment_intent_id=None,
        charge_id=None,
        invoice_id=invoice_id,
        stripe_event_id=event.id,
    )


def refunds_of(note: StripeDict) -> list[dict[str, Any]]:
    """The refunds the credit note made, `[{"refund": id, "amount": minor units}]`."""
    if isinstance(note.get("refunds"), list):
        found = []
        for item in note["refunds"]:
            refund_id = object_id((item or {}).get("refund"))
            if refund_id:
                found.append({"refund": refund_id, "amount": int(item.get("amount_refunded") or 0)})
        return found
    refund = note.get("refund")
    refund_id = object_id(refund)
    if refund_id is None:
        return []
    if isinstance(refund, dict) and refund.get("amount") is not None:
        amount = int(refund["amount"])
    else:
        amount = int(note.get("amount") or 0) - int(note.get("out_of_band_amount") or 0)
    return [{"refund": refund_id, "amount": max(amount, 0)}]
