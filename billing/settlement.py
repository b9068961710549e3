"""One settlement per payment: the ledger's effect of a payment is one function of the facts
stored about it, whatever order they came in.

The facts: what the payment bought (the grants carrying its ids or its invoice's: a plan
period, an upgrade's top-up, a pack), what has been refunded of it (`payment_refunds`, the
largest cumulative amount seen), its disputes with their status (`disputes`), and the card
network's early fraud warnings on it (`early_fraud_warnings`). Each new
fact records itself and then calls `bring_ledger_to`, which compares what `settle` says the
refunds and disputes should have taken with what the ledger's entries for the payment took,
and appends the difference: append-only, each entry keyed (a duplicate is a no-op). A fact
that arrives before the purchase it refers to is stored and settles when the purchase is
granted, since granting calls `bring_ledger_to` too: nothing is ever "nothing to take, done".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db import ledger
from db.invoices import paid_by
from db.models import CreditEntry, CreditKind, EarlyFraudWarning
from db.payment_facts import (
    disputes_of_payment,
    invoice_payment,
    refunds_of_payment,
    warnings_of_payment,
)

# A won chargeback gives its hold back; so does a `prevented` one, which Stripe settles with a
# refund (the refund then takes the credits back itself).
RELEASING_STATUSES = frozenset({"won", "prevented"})


@dataclass(frozen=True, slots=True)
class Refunded:
    amount: int  # the charge's amount (minor units)
    refunded: int  # refunded so far (minor units)


@dataclass(frozen=True, slots=True)
class PaymentFacts:
    """Everything stored about one payment that moves credits."""

    granted: int  # the credits the payment bought
    refunds: Sequence[Refunded] = ()
    chargeback_statuses: Sequence[str] = ()  # disputes that are not inquiries
    fraud_warned: bool = False  # an early fraud warning names the payment's charge


@dataclass(frozen=True, slots=True)
class Targets:
    """What the ledger's entries of each kind should add up to for the payment (<= 0)."""

    refund: int
    dispute: int
    fraud_warning: int = 0


def settle(facts: PaymentFacts) -> Targets:
    """Refunds take back the refunded share of what was bought; an open or lost chargeback
    holds back the rest; a won (or prevented) one holds nothing. Nothing is taken beyond
    what was bought, so the balance never pays back more than the customer paid for.

    An early fraud warning holds back the rest like a chargeback, until a chargeback on the
    payment takes over (its own hold, or none once won) or refunds take it all: the credits
    are never held twice."""
    if facts.granted <= 0:
        return Targets(refund=0, dispute=0)
    refunded = 0
    for fact in facts.refunds:
        if fact.amount > 0:
            share = facts.granted * min(max(fact.refunded, 0), fact.amount) // fact.amount
            refunded = max(refunded, share)
    holding = any(status not in RELEASING_STATUSES for status in facts.chargeback_statuses)
    held = facts.granted - refunded if holding else 0
    warned = facts.fraud_warned and not facts.chargeback_statuses
    warning_held = facts.granted - refunded if warned else 0
    return Targets(refund=-refunded, dispute=-held, fraud_warning=-warning_held)


def bring_ledger_to(
    session: Session,
    *,
    payment_intent_id: str | None,
    charge_id: str | None,
    invoice_id: str | None = None,
    stripe_event_id: str | None = None,
) -> Targets | None:
    """Append the entries that bring the payment's refunds and holds to what `settle` says;
    None while nothing the payment bought is known (the facts wait for it)."""
    if invoice_id and not (payment_intent_id and charge_id):
        intent, charge = invoice_payment(session, invoice_id=invoice_id)
        payment_intent_id, charge_id = payment_intent_id or intent, charge_id or charge
    grants = ledger.grants_of_payment(
        session, payment_intent_id=payment_intent_id, charge_id=charge_id
    )
    if invoice_id:
        known = {grant.id for grant in grants}
        grants += [
            g for g in ledger.grants_of_invoice(session, invoice_id=invoice_id) if g.id not in known
        ]
    refunds = refunds_of_payment(
        session, payment_intent_id=payment_intent_id, charge_id=charge_id, invoice_id=invoice_id
    )
    warnings = warnings_of_payment(
        session, payment_intent_id=payment_intent_id, charge_id=charge_id, invoice_id=invoice_id
    )
    # A refund or a warning names the ids the invoice may not (newer API versions).
    known_ids = (payment_intent_id, charge_id)
    for fact in [*refunds, *warnings]:
        payment_intent_id = payment_intent_id or fact.payment_intent_id
        charge_id = charge_id or fact.charge_id
    if not grants:
        return None
    disputes = [
        d
        for d in disputes_of_payment(
            session, payment_intent_id=payment_intent_id, charge_id=charge_id
        )
        if not d.is_inquiry
    ]
    if (payment_intent_id, charge_id) != known_ids:
        # Again with the ids the facts named: a warning found by the charge's id alone.
        warnings = warnings_of_payment(
            session, payment_intent_id=payment_intent_id, charge_id=charge_id, invoice_id=invoice_id
        )
    targets = settle(
        PaymentFacts(
            granted=sum(grant.amount for grant in grants),
            refunds=[Refunded(amount=r.amount, refunded=r.amount_refunded) for r in refunds],
            chargeback_statuses=[d.status for d in disputes],
            fraud_warned=bool(warnings),
        )
    )
    account_id = grants[0].account_id
    ids = {"payment_intent_id": payment_intent_id, "charge_id": charge_id}
    taken = _taken(session, kinds=(CreditKind.REFUND,), **ids)
    if targets.refund != taken and refunds:
        last = refunds[-1]
        ledger.add_adjustment(
            session,
            account_id=account_id,
            kind=CreditKind.REFUND,
            key=f"{last.charge_id}:{last.amount_refunded}",
            amount=targets.refund - taken,
            stripe_event_id=stripe_event_id,
            description=f"refund of {last.amount_refunded} of {last.amount} "
            f"{last.currency or ''}".strip(),
            **ids,
        )
    held = _taken(session, kinds=(CreditKind.DISPUTE_HOLD, CreditKind.DISPUTE_RELEASE), **ids)
    if targets.dispute != held and disputes:
        dispute = disputes[-1]
        difference = targets.dispute - held
        ledger.add_adjustment(
            session,
            account_id=account_id,
            kind=CreditKind.DISPUTE_HOLD if difference < 0 else CreditKind.DISPUTE_RELEASE,
            key=dispute.stripe_dispute_id,
            amount=difference,
            stripe_event_id=stripe_event_id,
            description=(
                f"held back while chargeback {dispute.stripe_dispute_id} is open"
                if difference < 0
                else f"chargeback {dispute.stripe_dispute_id} {dispute.status}"
            ),
            **ids,
        )
    _bring_warning_hold_to(session, targets, warnings, account_id, stripe_event_id, ids)
    return targets


def _bring_warning_hold_to(
    session: Session,
    targets: Targets,
    warnings: Sequence[EarlyFraudWarning],
    account_id: int,
    stripe_event_id: str | None,
    ids: dict[str, str | None],
) -> None:
    """The fraud warnings' hold, keyed by the (first) warning's id; released as a chargeback
    or a refund takes over."""
    if not warnings:  # never warned: nothing was ever held (warnings are never deleted)
        return
    kinds = (CreditKind.FRAUD_WARNING_HOLD, CreditKind.FRAUD_WARNING_RELEASE)
    held = _taken(session, kinds=kinds, **ids)
    if targets.fraud_warning == held:
        return
    warning_id = warnings[0].stripe_warning_id
    difference = targets.fraud_warning - held
    ledger.add_adjustment(
        session,
        account_id=account_id,
        kind=CreditKind.FRAUD_WARNING_HOLD if difference < 0 else CreditKind.FRAUD_WARNING_RELEASE,
        key=warning_id,
        amount=difference,
        stripe_event_id=stripe_event_id,
        description=(
            f"held back after early fraud warning {warning_id}"
            if difference < 0
            else f"early fraud warning {warning_id}: a refund or a chargeback took over"
        ),
        **ids,
    )


def _taken(
    session: Session,
    *,
    kinds: tuple[CreditKind, ...],
    payment_intent_id: str | None,
    charge_id: str | None,
) -> int:
    match = paid_by(CreditEntry, payment_intent_id=payment_intent_id, charge_id=charge_id)
    if match is None:
        return 0
    return int(
        session.scalar(
            select(func.coalesce(func.sum(CreditEntry.amount), 0)).where(
                CreditEntry.kind.in_(kinds), match
            )
        )
    )
