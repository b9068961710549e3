"""`invoice_payment.paid` (API 2025-03-31.basil on): one part of an invoice paid in several
payments. Each part is kept once (its `inpay_` id); when the parts add up to what the invoice
asked, the invoice grants its period's credits, under the invoice id: the same key as
`invoice.paid`, so the period is granted once whichever says it first.

A part names its invoice but not its customer: the invoice stored (or Stripe's, fetched and
stored) gives the account, whose lock then serialises the parts, so two parts paid at once
cannot each miss the other. A part whose invoice cannot be known yet is kept without an
account and settled when the invoice is stored (`invoice.finalized`, or `invoice.paid`,
which grants by itself).
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from billing.accounts import adopt_customer
from billing.context import BillingContext
from billing.events import StripeEvent
from billing.invoices import grant_period_credits
from billing.subscription_notices import period_credits_withheld
from core.stripe_objects import (
    NON_GRANTING_BILLING_REASONS,
    invoice_payment_paid_at,
    invoice_payment_payment_ids,
    invoice_price_id,
    object_id,
)
from db.invoice_payments import amount_paid_in_parts, latest_part, record_part
from db.invoices import find_invoice, store_invoice
from db.locks import lock_customer
from db.models import Account, Invoice

log = logging.getLogger("billing.partial_payments")


def invoice_payment_paid(session: Session, ctx: BillingContext, event: StripeEvent) -> None:
    """`invoice_payment.paid`: keep the part; grant the invoice's credits once it is paid."""
    payment = event.object
    invoice_id = object_id(payment.get("invoice"))
    if invoice_id is None or payment.get("status") not in (None, "paid"):
        log.info("invoice payment %s is not a paid part of an invoice", payment.get("id"))
        return
    invoice = find_invoice(session, invoice_id=invoice_id) or _fetch_and_store(
        session, ctx, invoice_id=invoice_id, event=event
    )
    account_id = None
    if invoice is not None:
        customer = session.get(Account, invoice.account_id)
        assert customer is not None
        lock_customer(session, customer.stripe_customer_id)
        account_id = invoice.account_id
    intent, charge = invoice_payment_payment_ids(payment)
    record_part(
        session,
        invoice_payment_id=payment["id"],
        invoice_id=invoice_id,
        account_id=account_id,
        amount_paid=int(payment.get("amount_paid") or 0),
        currency=payment.get("currency"),
        payment_intent_id=intent,
        charge_id=charge,
        paid_at=invoice_payment_paid_at(payment),
    )
    if invoice is None:
        log.info("invoice %s is not known yet: part %s waits for it", invoice_id, payment["id"])
        return
    grant_if_paid_in_full(session, ctx, invoice=invoice, stripe_event_id=event.id)


def _fetch_and_store(
    session: Session, ctx: BillingContext, *, invoice_id: str, event: StripeEvent
) -> Invoice | None:
    fetched = ctx.retrieve(lambda client: client.v1.invoices.retrieve(invoice_id))
    customer_id = object_id((fetched or {}).get("customer"))
    if fetched is None or customer_id is None:
        return None
    lock_customer(session, customer_id)
    account = adopt_customer(session, ctx, customer_id=customer_id, source=fetched)
    plan = ctx.catalogue.plan_for_price(invoice_price_id(fetched))
    # Stripe's answer now, but stamped with the event's time: a later invoice event still wins.
    return store_invoice(
        session, account=account, invoice=fetched, plan=plan.id if plan else None, as_of=event.time
    )


def grant_if_paid_in_full(
    session: Session, ctx: BillingContext, *, invoice: Invoice, stripe_event_id: str
) -> int:
    """The period's credits of a subscription invoice whose parts add up to what it asked;
    what was granted (0 when not yet paid, nothing to grant, or granted before)."""
    paid = amount_paid_in_parts(session, invoice_id=invoice.stripe_invoice_id)
    if paid <= 0 or paid < invoice.amount_due:
        return 0
    if (
        not invoice.stripe_subscription_id
        or invoice.billing_reason in NON_GRANTING_BILLING_REASONS
        or period_credits_withheld(
            session,
            subscription_id=invoice.stripe_subscription_id,
            period_start=invoice.period_start,
        )
    ):
        return 0
    plan = ctx.catalogue.plan(invoice.plan or "") or ctx.catalogue.plan_for_price(invoice.price_id)
    if plan is None:
        return 0
    last = latest_part(session, invoice_id=invoice.stripe_invoice_id)
    account = session.get(Account, invoice.account_id)
    assert account is not None  # the invoice's foreign key
    return grant_period_credits(
        session,
        account=account,
        invoice_id=invoice.stripe_invoice_id,
        plan=plan,
        stripe_event_id=stripe_event_id,
        payment_intent_id=last.payment_intent_id if last else None,
        charge_id=last.charge_id if last else None,
    )
