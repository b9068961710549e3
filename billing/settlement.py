"""One settlement per payment: the ledger's effect of a payment is one function of the facts
stored about it, whatever order they came in.

The facts: what the payment bought (the grants carrying its ids or its invoice's: a plan
period, an upgrade's top-up, a pack), what has been refunded of it (`payment_refunds`, the
largest cumulative amount seen), the credit notes of its invoice (`credit_notes`), its
disputes with their status (`disputes`), and the card networks' early fraud warnings on it
(`early_fraud_warnings`). Each new fact records itself and then calls
`bring_ledger_to`, which compares what `settle` says each refund, credit note, dispute and
warning should have taken with what the ledger's entries for it took, and appends the difference:
append-only, each entry keyed (a duplicate is a no-op). A fact that arrives before the
purchase it refers to is stored and settles when the purchase is granted, since granting
calls `bring_ledger_to` too: nothing is ever "nothing to take, done".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from db import ledger
from db.invoices import find_invoice, find_invoice_of_payment, paid_by
from db.models import (
    CreditEntry,
    CreditKind,
    CreditNote,
    Dispute,
    EarlyFraudWarning,
    PaymentRefund,
)
from db.payment_facts import (
    VOID,
    credit_notes_of_invoice,
    disputes_of_payment,
    has_facts,
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
class CreditNoted:
    """A credit note of the payment's invoice: `refunds` (refund id -> amount) is money the
    charge's refunds also report; the rest of `amount` went to the customer's balance or was
    paid out of band."""

    id: str
    amount: int
    refunds: Mapping[str, int] = field(default_factory=dict)
    void: bool = False

    @property
    def not_refunded(self) -> int:
        return max(self.amount - sum(self.refunds.values()), 0)


@dataclass(frozen=True, slots=True)
class Chargeback:
    id: str
    status: str
    amount: int  # the disputed amount (minor units)


@dataclass(frozen=True, slots=True)
class PaymentFacts:
    """Everything stored about one payment that moves credits."""

    granted: int  # the credits the payment bought
    paid: int = 0  # the money it took (minor units; 0: not known yet)
    refunds: Sequence[Refunded] = ()
    credit_notes: Sequence[CreditNoted] = ()
    chargebacks: Sequence[Chargeback] = ()  # disputes that are not inquiries
    fraud_warned: bool = False  # an early fraud warning names the payment's charge


@dataclass(frozen=True, slots=True)
class Targets:
    """What the ledger's entries should add up to for the payment (each <= 0): the refunds
    together, each credit note and each dispute under its own id."""

    refund: int
    credit_notes: Mapping[str, int] = field(default_factory=dict)
    disputes: Mapping[str, int] = field(default_factory=dict)
    fraud_warning: int = 0

    @property
    def total(self) -> int:
        return (
            self.refund
            + sum(self.credit_notes.values())
            + sum(self.disputes.values())
            + self.fraud_warning
        )


def settle(facts: PaymentFacts) -> Targets:
    """Take back, in this order and never beyond what was bought (so the balance never pays
    back more than the customer paid for):
    1. refunds: the refunded share of the money. The money refunded is the charge's cumulative
       `amount_refunded`, or the credit notes' refunds counted once per refund id, whichever
       is larger: a credit note's refund and the `charge.refunded` it causes are one refund;
    2. credit notes: each its own share of what it credits without a refund (the customer's
       balance, out of band); a void one takes nothing;
    3. chargebacks: an open or lost one holds its own share of the money (the disputed
       amount), within what is left; a won (or prevented) one holds nothing;
    4. an early fraud warning: while no chargeback names the payment, it holds all that is
       left; once one does, the chargeback's own hold takes over (never both together).
    A share is `granted * money / paid`; while the money paid is not known, a refund or a
    credit note waits and a chargeback holds all that is left."""
    zero_notes = {note.id: 0 for note in facts.credit_notes}
    zero_disputes = {chargeback.id: 0 for chargeback in facts.chargebacks}
    if facts.granted <= 0:
        return Targets(refund=0, credit_notes=zero_notes, disputes=zero_disputes)
    charge_amount = max((r.amount for r in facts.refunds if r.amount > 0), default=0)
    paid = charge_amount or facts.paid
    left = facts.granted

    def take(money: int) -> int:
        nonlocal left
        share = min(facts.granted * max(money, 0) // paid, left) if paid > 0 else 0
        left -= share
        return share

    by_charge = max((min(max(r.refunded, 0), r.amount) for r in facts.refunds), default=0)
    by_refund_id: dict[str, int] = {}
    for note in facts.credit_notes:
        if not note.void:
            for refund_id, amount in note.refunds.items():
                by_refund_id[refund_id] = max(by_refund_id.get(refund_id, 0), amount)
    refunded = take(max(by_charge, sum(by_refund_id.values())))
    notes = dict(zero_notes)
    for note in sorted(facts.credit_notes, key=lambda n: n.id):
        if not note.void:
            notes[note.id] = -take(note.not_refunded)
    disputes = dict(zero_disputes)
    for chargeback in sorted(facts.chargebacks, key=lambda c: c.id):
        if chargeback.status in RELEASING_STATUSES:
            continue
        if paid > 0:
            disputes[chargeback.id] = -take(chargeback.amount)
        else:
            disputes[chargeback.id], left = -left, 0
    warned = facts.fraud_warned and not facts.chargebacks
    return Targets(
        refund=-refunded,
        credit_notes=notes,
        disputes=disputes,
        fraud_warning=-left if warned else 0,
    )


@dataclass(slots=True)
class Payment:
    """One payment's ids, what it bought and the facts stored about it."""

    payment_intent_id: str | None
    charge_id: str | None
    invoice_id: str | None
    grants: list[CreditEntry]
    refunds: list[PaymentRefund]
    credit_notes: list[CreditNote]
    disputes: list[Dispute]
    warnings: list[EarlyFraudWarning]
    paid: int

    @property
    def facts(self) -> PaymentFacts:
        return PaymentFacts(
            granted=sum(grant.amount for grant in self.grants),
            paid=self.paid,
            refunds=[Refunded(amount=r.amount, refunded=r.amount_refunded) for r in self.refunds],
            credit_notes=[
                CreditNoted(
                    id=note.stripe_credit_note_id,
                    amount=note.amount,
                    refunds={r["refund"]: int(r["amount"]) for r in note.refunds},
                    void=note.status == VOID,
                )
                for note in self.credit_notes
            ],
            chargebacks=[
                Chargeback(id=d.stripe_dispute_id, status=d.status, amount=d.amount)
                for d in self.disputes
                if not d.is_inquiry
            ],
            fraud_warned=bool(self.warnings),
        )


def gather(
    session: Session,
    *,
    payment_intent_id: str | None,
    charge_id: str | None,
    invoice_id: str | None = None,
) -> Payment:
    """The payment and its facts, found by whichever of its ids are known."""
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
    for refund in refunds:  # a refund names the ids the invoice may not (newer API versions)
        payment_intent_id = payment_intent_id or refund.payment_intent_id
        charge_id = charge_id or refund.charge_id
        invoice_id = invoice_id or refund.stripe_invoice_id
    warnings = warnings_of_payment(
        session, payment_intent_id=payment_intent_id, charge_id=charge_id, invoice_id=invoice_id
    )
    for warning in warnings:  # so does a warning (found by its charge, its invoice)
        payment_intent_id = payment_intent_id or warning.payment_intent_id
        charge_id = charge_id or warning.charge_id
    if invoice_id is None:
        invoice_id = next((g.stripe_invoice_id for g in grants if g.stripe_invoice_id), None)
    if invoice_id is None:
        found = find_invoice_of_payment(
            session, payment_intent_id=payment_intent_id, charge_id=charge_id
        )
        invoice_id = found.stripe_invoice_id if found else None
    invoice = find_invoice(session, invoice_id=invoice_id) if invoice_id else None
    return Payment(
        payment_intent_id=payment_intent_id,
        charge_id=charge_id,
        invoice_id=invoice_id,
        grants=grants,
        refunds=refunds,
        credit_notes=credit_notes_of_invoice(session, invoice_id=invoice_id),
        disputes=disputes_of_payment(
            session, payment_intent_id=payment_intent_id, charge_id=charge_id
        ),
        warnings=warnings,
        paid=(invoice.amount_paid or invoice.amount_due) if invoice else 0,
    )


def bring_ledger_to(
    session: Session,
    *,
    payment_intent_id: str | None,
    charge_id: str | None,
    invoice_id: str | None = None,
    stripe_event_id: str | None = None,
    invoice_read: bool = False,
) -> Targets | None:
    """Append the entries that bring the payment's refunds, credit notes and holds to what
    `settle` says; None while nothing the payment bought is known (the facts wait for it) or
    nothing takes anything back. `invoice_read`: the payment ids passed are the stored
    invoice's already (its handler has just stored it), so they are not read again."""
    if invoice_id and not invoice_read and not (payment_intent_id and charge_id):
        intent, charge = invoice_payment(session, invoice_id=invoice_id)
        payment_intent_id, charge_id = payment_intent_id or intent, charge_id or charge
    # Most payments are never refunded, credited, disputed or warned about: then nothing is
    # taken back, and the facts need not be read (facts are never deleted, so no entry of an
    # earlier settlement can wait to be undone). `gather` finds every fact through these
    # ids, or through a refund or warning that this check finds too.
    if not has_facts(
        session, payment_intent_id=payment_intent_id, charge_id=charge_id, invoice_id=invoice_id
    ):
        return None
    payment = gather(
        session, payment_intent_id=payment_intent_id, charge_id=charge_id, invoice_id=invoice_id
    )
    if not payment.grants:
        return None
    targets = settle(payment.facts)
    ids = {
        "payment_intent_id": payment.payment_intent_id,
        "charge_id": payment.charge_id,
        "stripe_invoice_id": payment.invoice_id,
    }

    def adjust(kind: CreditKind, key: str, amount: int, description: str) -> None:
        ledger.add_adjustment(
            session,
            account_id=payment.grants[0].account_id,
            kind=kind,
            key=key,
            amount=amount,
            stripe_event_id=stripe_event_id,
            description=description,
            **ids,
        )

    taken = _refunds_taken(session, payment)
    if targets.refund != taken:
        last = payment.refunds[-1] if payment.refunds else None
        source = payment.charge_id or payment.payment_intent_id or payment.invoice_id
        money = last.amount_refunded if last else 0
        adjust(
            CreditKind.REFUND,
            f"{source}:{money}",
            targets.refund - taken,
            f"refund of {money} of {last.amount} {last.currency or ''}".strip()
            if last
            else f"refunded with a credit note of invoice {payment.invoice_id}",
        )
    for note_id, target in targets.credit_notes.items():
        noted = ledger.sum_of_key(session, kind=CreditKind.CREDIT_NOTE, key=note_id)
        if target != noted:
            adjust(
                CreditKind.CREDIT_NOTE,
                note_id,
                target - noted,
                f"credit note {note_id}" + (" voided" if target > noted else ""),
            )
    for dispute_id, target in targets.disputes.items():
        held = ledger.sum_of_key(
            session, kind=CreditKind.DISPUTE_HOLD, key=dispute_id
        ) + ledger.sum_of_key(session, kind=CreditKind.DISPUTE_RELEASE, key=dispute_id)
        if target != held:
            difference = target - held
            status = next(d.status for d in payment.disputes if d.stripe_dispute_id == dispute_id)
            adjust(
                CreditKind.DISPUTE_HOLD if difference < 0 else CreditKind.DISPUTE_RELEASE,
                dispute_id,
                difference,
                f"held back while chargeback {dispute_id} is open"
                if difference < 0
                else f"chargeback {dispute_id} {status}",
            )
    if payment.warnings:  # never warned: nothing was ever held (warnings are never deleted)
        # Keyed by the first warning's id: a second warning on the charge holds nothing more.
        warning_id = payment.warnings[0].stripe_warning_id
        held = ledger.sum_of_key(
            session, kind=CreditKind.FRAUD_WARNING_HOLD, key=warning_id
        ) + ledger.sum_of_key(session, kind=CreditKind.FRAUD_WARNING_RELEASE, key=warning_id)
        if targets.fraud_warning != held:
            difference = targets.fraud_warning - held
            adjust(
                CreditKind.FRAUD_WARNING_HOLD
                if difference < 0
                else CreditKind.FRAUD_WARNING_RELEASE,
                warning_id,
                difference,
                f"held back after early fraud warning {warning_id}"
                if difference < 0
                else f"early fraud warning {warning_id}: a refund or a chargeback took over",
            )
    return targets


def kept(session: Session, grant: CreditEntry) -> int:
    """What a grant still holds once its payment's refunds, credit notes and disputes have
    taken their share (their targets, whether or not the ledger has reached them yet): each
    grant of the payment gives up the same fraction."""
    invoice_id = grant.stripe_invoice_id or (
        grant.source_id if grant.kind == CreditKind.PLAN_CREDITS else None
    )
    payment = gather(
        session,
        payment_intent_id=grant.payment_intent_id,
        charge_id=grant.charge_id,
        invoice_id=invoice_id,
    )
    facts = payment.facts
    if facts.granted <= 0:
        return grant.amount
    taken = -settle(facts).total
    return grant.amount - (grant.amount * taken + facts.granted - 1) // facts.granted


def _refunds_taken(session: Session, payment: Payment) -> int:
    """The refund entries of the payment so far, by its ids or its invoice's."""
    conditions = [
        c
        for c in (
            paid_by(
                CreditEntry,
                payment_intent_id=payment.payment_intent_id,
                charge_id=payment.charge_id,
            ),
            CreditEntry.stripe_invoice_id == payment.invoice_id if payment.invoice_id else None,
        )
        if c is not None
    ]
    if not conditions:
        return 0
    return int(
        session.scalar(
            select(func.coalesce(func.sum(CreditEntry.amount), 0)).where(
                CreditEntry.kind == CreditKind.REFUND, or_(*conditions)
            )
        )
    )
