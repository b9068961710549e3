"""The evidence the platform would submit for a dispute, assembled from what it stores, and
whether Visa Compelling Evidence 3.0 applies.

Visa CE 3.0 (Stripe API since 2024-10-28.acacia; docs.stripe.com/disputes/api/visa-ce3): a
Visa card-absent fraud dispute (reason code 10.4) is reversed when the same card paid the
merchant at least twice before, 120 to 365 days before the disputed payment, without a
dispute or a fraud report, and at least two of the customer account id, the purchase IP,
the device fingerprint and the shipping address match the disputed payment's, one of them
being the IP or the device. The platform checks this against its own history (the card
fingerprint of each charge, the user behind it, the IP and device of its Checkout) and
reads Stripe's verdict, `evidence_details.enhanced_eligibility.visa_compelling_evidence_3`,
when Stripe sends one. A SaaS ships nothing, so the shipping address never matches here.

Smart Disputes: Stripe may submit evidence itself (`evidence_details.submission_method`
`smart_disputes`, or `intended_submission_method` `smart_disputes`/`prefer_smart_disputes`);
submitting ours too could overwrite Stripe's packet, so the platform then refuses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.context import BillingContext
from db.models import (
    Account,
    CreditEntry,
    CreditKind,
    Dispute,
    EarlyFraudWarning,
    Invoice,
    PaymentRecord,
)
from db.purchases import find_payment_record, payments_of_card

CE3_REASON_CODE = "10.4"
CE3_NEWEST = timedelta(days=120)
CE3_OLDEST = timedelta(days=365)
# Stripe refuses a shorter `customer_device_fingerprint` (docs: "at least 20 characters").
MIN_DEVICE_FINGERPRINT = 20
IDENTIFYING = ("customer_purchase_ip", "customer_device_fingerprint")
SMART_INTENTS = frozenset({"smart_disputes", "prefer_smart_disputes"})
MAX_LISTED = 10


@dataclass(frozen=True, slots=True)
class PriorTransaction:
    charge: str
    created: int  # Unix time
    amount: int
    matched: list[str]
    record: PaymentRecord = field(repr=False)

    def out(self) -> dict[str, Any]:
        return {
            "charge": self.charge,
            "created": self.created,
            "amount": self.amount,
            "matched": self.matched,
        }


@dataclass(frozen=True, slots=True)
class Ce3Verdict:
    eligible: bool
    reason: str
    prior_transactions: list[PriorTransaction]
    disputed: PaymentRecord | None = None

    def out(self) -> dict[str, Any]:
        return {
            "eligible": self.eligible,
            "reason": self.reason,
            "prior_transactions": [p.out() for p in self.prior_transactions],
        }


def elements(record: PaymentRecord) -> dict[str, str]:
    """The CE 3.0 data elements the platform knows of a payment, by Stripe's field name."""
    known = {
        "customer_account_id": record.user_id,
        "customer_purchase_ip": record.ip_address,
        "customer_device_fingerprint": record.device_fingerprint
        if record.device_fingerprint and len(record.device_fingerprint) >= MIN_DEVICE_FINGERPRINT
        else None,
    }
    return {name: value for name, value in known.items() if value}


def matched_elements(disputed: PaymentRecord, prior: PaymentRecord) -> list[str]:
    mine, theirs = elements(disputed), elements(prior)
    return [name for name, value in mine.items() if theirs.get(name) == value]


def qualifies(matched: list[str]) -> bool:
    return len(matched) >= 2 and any(name in IDENTIFYING for name in matched)


def visa_ce3(session: Session, dispute: Dispute) -> Ce3Verdict:
    """Whether the dispute qualifies for Visa CE 3.0 by the platform's own history, checked
    against Stripe's `enhanced_eligibility` when present; the reason either way."""
    verdict = _own_verdict(session, dispute)
    stripe_says = _stripe_status(dispute)
    if stripe_says is None:
        return verdict
    status, actions = stripe_says
    if status == "not_qualified" and verdict.eligible:
        return Ce3Verdict(
            False,
            "Stripe's enhanced_eligibility says not_qualified, although the platform's "
            f"history matches ({verdict.reason})",
            verdict.prior_transactions,
            verdict.disputed,
        )
    if status != "qualified" and actions:
        note = f"; Stripe's enhanced_eligibility: {status}, required: {', '.join(actions)}"
        return Ce3Verdict(
            verdict.eligible, verdict.reason + note, verdict.prior_transactions, verdict.disputed
        )
    return Ce3Verdict(
        verdict.eligible,
        f"{verdict.reason}; Stripe's enhanced_eligibility: {status}",
        verdict.prior_transactions,
        verdict.disputed,
    )


def _stripe_status(dispute: Dispute) -> tuple[str, list[str]] | None:
    ce3 = (dispute.enhanced_eligibility or {}).get("visa_compelling_evidence_3")
    if not isinstance(ce3, dict) or not ce3.get("status"):
        return None
    return str(ce3["status"]), [str(a) for a in ce3.get("required_actions") or []]


def _own_verdict(session: Session, dispute: Dispute) -> Ce3Verdict:
    if (dispute.network or "").lower() not in ("visa", ""):
        return Ce3Verdict(False, f"not a Visa dispute ({dispute.network})", [])
    if dispute.network_reason_code and dispute.network_reason_code != CE3_REASON_CODE:
        return Ce3Verdict(
            False,
            f"reason code {dispute.network_reason_code} is not Visa's 10.4 (card-absent fraud)",
            [],
        )
    if dispute.reason != "fraudulent":
        return Ce3Verdict(False, f"reason {dispute.reason} is not fraudulent", [])
    disputed = find_payment_record(session, charge_id=dispute.charge_id or "")
    if disputed is None or not disputed.card_fingerprint:
        return Ce3Verdict(False, "the disputed payment's card fingerprint is unknown here", [])
    if (disputed.card_network or disputed.card_brand or "visa").lower() != "visa":
        return Ce3Verdict(False, f"the card is not a Visa card ({disputed.card_network})", [])
    if not elements(disputed):
        return Ce3Verdict(
            False, "no user, IP or device is known of the disputed payment", [], disputed
        )
    when = disputed.stripe_created
    priors = [
        p
        for p in payments_of_card(
            session,
            card_fingerprint=disputed.card_fingerprint,
            start=when - CE3_OLDEST,
            end=when - CE3_NEWEST,
        )
        if p.charge_id != disputed.charge_id and not _challenged(session, p.charge_id)
    ]
    listed = [
        PriorTransaction(
            charge=p.charge_id,
            created=int(p.stripe_created.timestamp()),
            amount=p.amount,
            matched=matched_elements(disputed, p),
            record=p,
        )
        for p in priors
    ]
    qualifying = [p for p in listed if qualifies(p.matched)]
    shown = (qualifying + [p for p in listed if p not in qualifying])[:MAX_LISTED]
    if len(qualifying) >= 2:
        names = sorted({name for p in qualifying[:2] for name in p.matched})
        return Ce3Verdict(
            True,
            f"{len(qualifying)} undisputed payments with the same card 120 to 365 days "
            f"before match on {', '.join(names)}",
            shown,
            disputed,
        )
    if not listed:
        reason = "no undisputed payment with the same card 120 to 365 days before"
    else:
        reason = (
            f"{len(qualifying)} of {len(listed)} earlier payments with the same card match on "
            "two elements including the IP or the device; Visa needs two"
        )
    return Ce3Verdict(False, reason, shown, disputed)


def _challenged(session: Session, charge_id: str) -> bool:
    """Disputed or reported as fraud: such a payment is no evidence of good faith."""
    return (
        session.scalar(select(Dispute.id).where(Dispute.charge_id == charge_id).limit(1))
        is not None
        or session.scalar(
            select(EarlyFraudWarning.id).where(EarlyFraudWarning.charge_id == charge_id).limit(1)
        )
        is not None
    )


def submission(dispute: Dispute) -> dict[str, Any]:
    """How evidence was (or will be) submitted, and whether Smart Disputes is in charge."""
    method = dispute.submission_method or (
        "manual" if dispute.evidence_submission_count else "not_submitted"
    )
    return {
        "method": method,
        "intended": dispute.intended_submission_method,
        "smart_disputes": smart_disputes_in_charge(dispute),
    }


def smart_disputes_in_charge(dispute: Dispute) -> bool:
    return (
        dispute.submission_method == "smart_disputes"
        or dispute.intended_submission_method in SMART_INTENTS
    )


def evidence_draft(session: Session, ctx: BillingContext, dispute: Dispute) -> dict[str, Any]:
    """`{"evidence", "visa_ce3", "submission"}`: Stripe's text evidence fields the platform
    can fill, Visa CE 3.0's verdict, and Smart Disputes' part."""
    verdict = visa_ce3(session, dispute)
    return {
        "evidence": text_evidence(session, ctx, dispute, verdict.disputed),
        "visa_ce3": verdict.out(),
        "submission": submission(dispute),
    }


def text_evidence(
    session: Session, ctx: BillingContext, dispute: Dispute, record: PaymentRecord | None
) -> dict[str, str]:
    """Customer, service, usage, invoices and policies; fields left empty are left out."""
    record = record or find_payment_record(session, charge_id=dispute.charge_id or "")
    account = session.get(Account, dispute.account_id) if dispute.account_id else None
    invoices = _invoices(session, account)
    evidence: dict[str, str | None] = {
        "customer_email_address": account.email if account else None,
        "customer_purchase_ip": record.ip_address if record else None,
        "product_description": _product(ctx, dispute, record, invoices),
        "service_date": _service_date(dispute, record, invoices),
        "access_activity_log": _usage(session, account),
        "uncategorized_text": _invoice_lines(invoices),
        "refund_policy_disclosure": ctx.settings.refund_policy_url or None,
        "cancellation_policy_disclosure": ctx.settings.terms_url or None,
    }
    return {name: value for name, value in evidence.items() if value}


def _invoices(session: Session, account: Account | None) -> list[Invoice]:
    if account is None:
        return []
    return list(
        session.scalars(
            select(Invoice)
            .where(Invoice.account_id == account.id, Invoice.amount_paid > 0)
            .order_by(Invoice.id.desc())
            .limit(12)
        )
    )


def _product(
    ctx: BillingContext, dispute: Dispute, record: PaymentRecord | None, invoices: list[Invoice]
) -> str:
    paid = next(
        (i for i in invoices if dispute.charge_id and i.charge_id == dispute.charge_id), None
    )
    plan = ctx.catalogue.plan(paid.plan) if paid and paid.plan else None
    if plan is not None:
        return (
            f"{ctx.settings.product_name}: the {plan.name} subscription, "
            f"{plan.monthly_credits} credits a month of a software service"
        )
    if record is not None and record.description:
        return f"{ctx.settings.product_name}: {record.description}"
    return f"{ctx.settings.product_name}: credits of a software service"


def _service_date(
    dispute: Dispute, record: PaymentRecord | None, invoices: list[Invoice]
) -> str | None:
    paid = next(
        (i for i in invoices if dispute.charge_id and i.charge_id == dispute.charge_id), None
    )
    if paid is not None and paid.period_start is not None:
        return paid.period_start.date().isoformat()
    if record is not None:
        return record.stripe_created.date().isoformat()
    return dispute.stripe_created.date().isoformat() if dispute.stripe_created else None


def _usage(session: Session, account: Account | None) -> str | None:
    if account is None:
        return None
    rows = session.execute(
        select(CreditEntry.amount, CreditEntry.created_at)
        .where(CreditEntry.account_id == account.id, CreditEntry.kind == CreditKind.CONSUMPTION)
        .order_by(CreditEntry.id)
    ).all()
    if not rows:
        return None
    spent = -sum(int(r[0]) for r in rows)
    first, last = rows[0][1], rows[-1][1]
    return (
        f"The customer's account used the service {len(rows)} times, spending {spent} "
        f"credits, between {_day(first)} and {_day(last)}."
    )


def _invoice_lines(invoices: list[Invoice]) -> str | None:
    if not invoices:
        return None
    lines = [
        f"Invoice {i.number or i.stripe_invoice_id}: {i.amount_paid / 100:.2f} "
        f"{i.currency.upper()} paid"
        + (f", service from {_day(i.period_start)}" if i.period_start else "")
        for i in invoices
    ]
    return "Invoices paid by the customer:\n" + "\n".join(lines)


def _day(moment: datetime) -> str:
    return moment.astimezone(UTC).date().isoformat()


def enhanced_evidence(dispute: Dispute, verdict: Ce3Verdict, product: str) -> dict[str, Any]:
    """`evidence.enhanced_evidence.visa_compelling_evidence_3` of an eligible verdict: the
    disputed transaction and exactly two qualifying prior ones."""
    assert verdict.eligible and verdict.disputed is not None
    disputed = {
        **elements(verdict.disputed),
        "merchandise_or_services": "services",
        "product_description": product,
    }
    priors = [
        {"charge": p.charge, **elements(p.record), "product_description": product}
        for p in verdict.prior_transactions
        if qualifies(p.matched)
    ][:2]
    return {
        "visa_compelling_evidence_3": {
            "disputed_transaction": disputed,
            "prior_undisputed_transactions": priors,
        }
    }
