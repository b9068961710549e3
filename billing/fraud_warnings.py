"""`radar.early_fraud_warning.created` and `.updated`: a card network's fraud report on a
charge (Visa TC40, Mastercard SAFE), which most often becomes a fraud dispute weeks later.

The warning is a fact about its charge's payment (`billing.settlement`): it holds back what
the payment bought net of refunds, keyed by the warning id, until a chargeback on the same
payment takes over or refunds take it all, so credits are never held twice. Admins hear of
it once. `EFW_ACTION` may also refund an actionable warning's charge (Stripe's advice: a
refund before the dispute avoids its fee and its count in the network's ratios), under the
idempotency key `efw-refund:<warning id>`; the `charge.refunded` that follows converts the
hold into the refund's take-back. `refund_and_cancel` also ends the subscription.
"""

from __future__ import annotations

import logging
from datetime import datetime

import sentry_sdk
import stripe
from sqlalchemy.orm import Session

from billing.cancellation import cancel_live_subscription
from billing.context import BillingContext
from billing.events import StripeEvent
from billing.notices import notify_admins
from billing.payments import invoice_of_payment
from billing.upgrades import settle_payment
from core.redaction import redact_email
from core.stripe_objects import StripeDict, object_id, timestamp
from db import ledger
from db.accounts import ensure_account
from db.fraud_warnings import lock_warning_row
from db.locks import advisory_lock, lock_customer
from db.models import Account, EarlyFraudWarning, PaymentRecord
from db.payment_facts import refunds_of_payment
from db.purchases import find_payment_record

log = logging.getLogger("billing.fraud_warnings")

REFUNDING_ACTIONS = ("refund", "refund_and_cancel")


def fraud_warning_event(session: Session, ctx: BillingContext, event: StripeEvent) -> None:
    """Store the warning's newest state, hold its payment's credits, alert, apply the policy."""
    warning = event.object
    warning_id, charge_id = warning.get("id"), object_id(warning.get("charge"))
    if not warning_id or not charge_id:
        raise ValueError("early fraud warning lacks its id or charge")
    intent = object_id(warning.get("payment_intent"))
    # Events of one warning name no customer: serialise them on the warning itself.
    advisory_lock(session, f"early-fraud-warning:{warning_id}")
    account, invoice_id, charge = _what_it_paid_for(
        session, ctx, charge_id=charge_id, payment_intent_id=intent
    )
    if account is not None:
        lock_customer(session, account.stripe_customer_id)
    row, created = lock_warning_row(
        session,
        warning_id=warning_id,
        charge_id=charge_id,
        actionable=bool(warning.get("actionable")),
        as_of=event.time,
    )
    if created or event.time >= row.state_as_of:
        _store(row, warning, intent=intent, as_of=event.time)
    row.account_id = row.account_id or (account.id if account else None)
    row.stripe_invoice_id = row.stripe_invoice_id or invoice_id
    session.flush()
    if created:
        _report(row)
    settle_payment(
        session,
        ctx,
        payment_intent_id=row.payment_intent_id,
        charge_id=charge_id,
        invoice_id=invoice_id,
        stripe_event_id=event.id,
    )
    _alert_admins(session, ctx, row, account)
    _apply_policy(session, ctx, row, charge=charge, stripe_event_id=event.id)


def _store(
    row: EarlyFraudWarning, warning: StripeDict, *, intent: str | None, as_of: datetime
) -> None:
    row.payment_intent_id = intent or row.payment_intent_id
    row.fraud_type = warning.get("fraud_type") or row.fraud_type
    row.actionable = bool(warning.get("actionable"))
    row.livemode = bool(warning.get("livemode"))
    row.stripe_created = timestamp(warning.get("created")) or row.stripe_created
    row.state_as_of = max(row.state_as_of, as_of)


def _what_it_paid_for(
    session: Session, ctx: BillingContext, *, charge_id: str, payment_intent_id: str | None
) -> tuple[Account | None, str | None, StripeDict | None]:
    """The account, the invoice the charge paid (when the ledger needs it to find the
    grants), and Stripe's charge when it had to be asked."""
    grant = ledger.find_grant_of_payment(
        session, payment_intent_id=payment_intent_id, charge_id=charge_id
    )
    if grant is not None:
        return session.get(Account, grant.account_id), None, None
    record = find_payment_record(session, charge_id=charge_id)
    charge = ctx.retrieve(lambda client: client.v1.charges.retrieve(charge_id))
    intent = payment_intent_id or (record.payment_intent_id if record else None)
    if charge is not None:
        intent = intent or object_id(charge.get("payment_intent"))
    invoice_id = (record.stripe_invoice_id if record else None) or (
        object_id(charge.get("invoice")) if charge else None
    )
    invoice_id = invoice_id or invoice_of_payment(ctx, intent)
    if invoice_id:
        grant = next(iter(ledger.grants_of_invoice(session, invoice_id=invoice_id)), None)
        if grant is not None:
            return session.get(Account, grant.account_id), invoice_id, charge
    if record is not None and record.account_id is not None:
        return session.get(Account, record.account_id), invoice_id, charge
    customer_id = object_id(charge.get("customer")) if charge else None
    if customer_id:
        lock_customer(session, customer_id)
        return ensure_account(session, customer_id=customer_id)[0], invoice_id, charge
    return None, invoice_id, charge


def _report(warning: EarlyFraudWarning) -> None:
    log.warning(
        "early fraud warning %s on charge %s (%s)",
        warning.stripe_warning_id,
        warning.charge_id,
        warning.fraud_type,
    )
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("stripe_warning_id", warning.stripe_warning_id)
        scope.set_tag("stripe_charge_id", warning.charge_id)
        sentry_sdk.capture_message(
            f"Early fraud warning {warning.stripe_warning_id} ({warning.fraud_type})", "warning"
        )


def _alert_admins(
    session: Session, ctx: BillingContext, warning: EarlyFraudWarning, account: Account | None
) -> None:
    customer = "unknown (unlinked)"
    if account is not None:
        email = f" ({redact_email(account.email)})" if account.email else ""
        customer = f"{account.stripe_customer_id}{email}"
    mode = "" if warning.livemode else "test/"
    notify_admins(
        session,
        ctx,
        key=f"fraud-warning:{warning.stripe_warning_id}",
        template="fraud_warning",
        context={
            "warning_id": warning.stripe_warning_id,
            "charge_id": warning.charge_id,
            "fraud_type": warning.fraud_type or "unknown",
            "actionable": warning.actionable,
            "customer": customer,
            "action": ctx.settings.efw_action,
            "dashboard_url": f"https://dashboard.stripe.com/{mode}payments/{warning.charge_id}",
        },
    )


def _apply_policy(
    session: Session,
    ctx: BillingContext,
    warning: EarlyFraudWarning,
    *,
    charge: StripeDict | None,
    stripe_event_id: str,
) -> None:
    """EFW_ACTION: refund an actionable warning's charge up to EFW_AUTO_REFUND_MAX_AMOUNT
    (once: the Stripe key `efw-refund:<id>` and `refund_requested_at`), and with
    `refund_and_cancel` end the subscription (key `efw-cancel:<id>`)."""
    settings = ctx.settings
    if settings.efw_action not in REFUNDING_ACTIONS or warning.refund_requested_at is not None:
        return
    if not warning.actionable or settings.efw_auto_refund_max_amount <= 0:
        return
    if ctx.stripe is None:
        log.warning("early fraud warning %s: no Stripe key to refund", warning.stripe_warning_id)
        return
    amount = _charge_amount(session, ctx, warning, charge)
    if amount is None or amount > settings.efw_auto_refund_max_amount:
        log.info(
            "early fraud warning %s: charge of %s above EFW_AUTO_REFUND_MAX_AMOUNT, held only",
            warning.stripe_warning_id,
            amount,
        )
        return
    try:
        ctx.stripe.v1.refunds.create(
            params={
                "charge": warning.charge_id,
                "reason": "fraudulent",
                "metadata": {"early_fraud_warning": warning.stripe_warning_id},
            },
            options={"idempotency_key": f"efw-refund:{warning.stripe_warning_id}"},
        )
    except stripe.InvalidRequestError as exc:
        # Already refunded or disputed in the meantime (Stripe refuses both): the hold stays
        # until that refund's or dispute's own event settles the payment.
        log.warning(
            "early fraud warning %s: refund refused by Stripe: %s", warning.stripe_warning_id, exc
        )
        return
    warning.refund_requested_at = ctx.now()
    session.flush()
    log.info("early fraud warning %s: charge refunded by policy", warning.stripe_warning_id)
    if settings.efw_action == "refund_and_cancel" and warning.account_id is not None:
        cancel_live_subscription(
            session,
            ctx,
            account_id=warning.account_id,
            idempotency_key=f"efw-cancel:{warning.stripe_warning_id}",
            why=f"early fraud warning {warning.stripe_warning_id}",
            stripe_event_id=stripe_event_id,
        )


def _charge_amount(
    session: Session,
    ctx: BillingContext,
    warning: EarlyFraudWarning,
    charge: StripeDict | None,
) -> int | None:
    """The charge's amount: stored (its payment record or refunds), else Stripe's."""
    record: PaymentRecord | None = find_payment_record(session, charge_id=warning.charge_id)
    if record is not None:
        return record.amount
    refunds = refunds_of_payment(
        session, payment_intent_id=None, charge_id=warning.charge_id, invoice_id=None
    )
    if refunds:
        return refunds[0].amount
    charge = charge or ctx.retrieve(lambda client: client.v1.charges.retrieve(warning.charge_id))
    return int(charge["amount"]) if charge and charge.get("amount") is not None else None
