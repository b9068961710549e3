"""The dispute lifecycle: `charge.dispute.created`, `.updated`, `.closed`, `.funds_withdrawn`,
`.funds_reinstated`, and Stripe's answers to the admin's actions (`billing.dispute_actions`).

A chargeback holds back the credits its payment granted (one entry keyed by the dispute id)
and gives them back once if it is won; a lost one keeps the hold. An inquiry holds nothing.
Funds movements are recorded once each and never touch the ledger. Admins hear when a
dispute opens and when it closes. Events and API answers go through `apply_dispute`, so both
paths keep the same rules.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import sentry_sdk
from sqlalchemy.orm import Session

from billing.cancellation import cancel_live_subscription
from billing.context import BillingContext
from billing.dispute_notices import alert_admins
from billing.events import StripeEvent
from billing.payments import invoice_of_payment
from billing.upgrades import settle_payment
from core.stripe_objects import StripeDict, object_id, timestamp
from db import ledger
from db.accounts import ensure_account
from db.disputes import (
    DisputeCause,
    DisputeState,
    FundsMovement,
    find_dispute,
    link,
    lock_dispute_row,
    record_funds_movement,
    record_status_change,
    store_state,
)
from db.locks import advisory_lock, lock_customer
from db.models import Account, CreditEntry, CreditKind, Dispute

log = logging.getLogger("billing.disputes")

# An inquiry (a "retrieval request") asks questions; no money has moved yet.
INQUIRY_STATUSES = frozenset({"warning_needs_response", "warning_under_review", "warning_closed"})
# Final: a late `updated` never reopens one of these.
CLOSED_STATUSES = frozenset({"won", "lost", "warning_closed", "prevented"})

FUNDS_EVENTS = {
    "charge.dispute.funds_withdrawn": FundsMovement.WITHDRAWN,
    "charge.dispute.funds_reinstated": FundsMovement.REINSTATED,
}


@dataclass(slots=True)
class DisputeSync:
    dispute: Dispute
    applied: bool  # False: what is stored is newer, or the dispute is closed
    created: bool
    previous_status: str | None

    @property
    def status_changed(self) -> bool:
        return self.applied and self.previous_status != self.dispute.status

    @property
    def closed_now(self) -> bool:
        return self.status_changed and self.dispute.status in CLOSED_STATUSES


def dispute_event(session: Session, ctx: BillingContext, event: StripeEvent) -> None:
    """Every dispute event: store the newest state, keep the ledger and the people in step."""
    result = apply_dispute(
        session,
        ctx,
        dispute=event.object,
        as_of=event.time,
        cause=DisputeCause.EVENT,
        stripe_event_id=event.id,
    )
    movement = FUNDS_EVENTS.get(event.type)
    if movement is not None:
        record_movement(session, result.dispute, event.object, movement, event.id)


def apply_dispute(
    session: Session,
    ctx: BillingContext,
    *,
    dispute: StripeDict,
    as_of: datetime | None,
    cause: DisputeCause,
    stripe_event_id: str | None,
) -> DisputeSync:
    """Store a Stripe dispute object (from an event or an API answer) and apply its effects.
    `as_of` None: Stripe's answer to our own call, its state now."""
    state = dispute_state(dispute)
    # Events of one dispute may name no customer: serialise them on the dispute itself.
    advisory_lock(session, f"dispute:{state.stripe_dispute_id}")
    stored = find_dispute(session, dispute_id=state.stripe_dispute_id)
    account, grant = (None, None)
    if stored is None or stored.grant_entry_id is None:
        account, grant = find_what_it_paid_for(session, ctx, state)
    if account is None and stored is not None and stored.account_id is not None:
        account = session.get(Account, stored.account_id)
    if account is not None:
        # Holds and releases change the balance: in step with everything else on the account.
        lock_customer(session, account.stripe_customer_id)
    result = sync_dispute(
        session, ctx, state=state, as_of=as_of, cause=cause, stripe_event_id=stripe_event_id
    )
    row = result.dispute
    link(
        session,
        row,
        account_id=account.id if account else None,
        grant_id=grant.id if grant else None,
    )
    if result.created:
        report(row)
    hold_or_release_credits(session, ctx, row, stripe_event_id)
    alert_admins(session, ctx, row, closed=row.status in CLOSED_STATUSES)
    if result.closed_now and row.status == "lost" and not row.is_inquiry:
        apply_lost_action(session, ctx, row, stripe_event_id)
    return result


def dispute_state(dispute: StripeDict) -> DisputeState:
    """What Stripe says of a dispute at one moment, in any API version."""
    if not dispute.get("id") or not dispute.get("status"):
        raise ValueError("dispute object lacks its id or status")
    status = dispute["status"]
    card = (dispute.get("payment_method_details") or {}).get("card") or {}
    evidence = dispute.get("evidence_details") or {}
    return DisputeState(
        stripe_dispute_id=dispute["id"],
        charge_id=object_id(dispute.get("charge")),
        payment_intent_id=object_id(dispute.get("payment_intent")),
        amount=int(dispute.get("amount") or 0),
        currency=dispute.get("currency") or "usd",
        reason=dispute.get("reason"),
        status=status,
        # Newer API versions say it outright; every version marks inquiries by status.
        is_inquiry=status in INQUIRY_STATUSES or card.get("case_type") == "inquiry",
        is_charge_refundable=bool(dispute.get("is_charge_refundable")),
        evidence_due_by=timestamp(evidence.get("due_by")),
        evidence_submission_count=int(evidence.get("submission_count") or 0),
        livemode=bool(dispute.get("livemode")),
        created=timestamp(dispute.get("created")),
        network=card.get("brand"),
        network_reason_code=card.get("network_reason_code"),
        # Smart Disputes (2025-06-30 and 2025-09-30 previews, general in 2026-10-28.endive).
        submission_method=evidence.get("submission_method"),
        intended_submission_method=dispute.get("intended_submission_method"),
        enhanced_eligibility=evidence.get("enhanced_eligibility") or None,
    )


def sync_dispute(
    session: Session,
    ctx: BillingContext,
    *,
    state: DisputeState,
    as_of: datetime | None,
    cause: DisputeCause,
    stripe_event_id: str | None = None,
) -> DisputeSync:
    """The ordering guard: store the state unless what is stored is newer (equal times
    apply); a closed dispute stays closed. Each change of status is recorded with its cause.
    `as_of` None: Stripe's answer right now, newer than anything stored."""
    authoritative = as_of is None
    # Stripe's `created` has whole seconds: an event of the same second as our fetch applies.
    as_of = as_of or ctx.now().replace(microsecond=0)
    row, created = lock_dispute_row(session, state=state, as_of=as_of)
    previous = None if created else row.status
    stale = not authoritative and as_of < row.state_as_of
    if not created and (stale or reopens(row.status, state.status)):
        return DisputeSync(dispute=row, applied=False, created=False, previous_status=previous)
    store_state(session, row, state=state, as_of=as_of)
    if created or previous != state.status:
        record_status_change(
            session, row, from_status=previous, cause=cause, stripe_event_id=stripe_event_id
        )
    return DisputeSync(dispute=row, applied=True, created=created, previous_status=previous)


def reopens(stored: str, incoming: str) -> bool:
    return stored in CLOSED_STATUSES and incoming not in CLOSED_STATUSES


def find_what_it_paid_for(
    session: Session, ctx: BillingContext, state: DisputeState
) -> tuple[Account | None, CreditEntry | None]:
    """The account and the grant of the disputed payment: from the ledger (by payment intent
    or charge, through the invoice it paid), else from Stripe (the charge's invoice and
    customer; in newer API versions the invoice payments of the payment intent)."""
    grant = ledger.find_grant_of_payment(
        session, payment_intent_id=state.payment_intent_id, charge_id=state.charge_id
    )
    if grant is not None:
        return session.get(Account, grant.account_id), grant
    charge_id = state.charge_id
    if charge_id is None:
        return None, None
    charge = ctx.retrieve(lambda client: client.v1.charges.retrieve(charge_id))
    if charge is None:
        return None, None
    intent = state.payment_intent_id or object_id(charge.get("payment_intent"))
    invoice_id = object_id(charge.get("invoice")) or invoice_of_payment(ctx, intent)
    if invoice_id:
        grant = next(iter(ledger.grants_of_invoice(session, invoice_id=invoice_id)), None)
    customer_id = object_id(charge.get("customer"))
    if grant is not None:
        return session.get(Account, grant.account_id), grant
    if customer_id:
        # Before the account insert: a concurrent event of the same new customer holds this
        # lock around its own insert, so taking it later could deadlock.
        lock_customer(session, customer_id)
        return ensure_account(session, customer_id=customer_id)[0], None
    return None, None


def hold_or_release_credits(
    session: Session, ctx: BillingContext, dispute: Dispute, stripe_event_id: str | None = None
) -> None:
    """The dispute is a fact about its payment: bring the payment's ledger to what all of its
    facts say (`billing.settlement`). A chargeback holds back what the payment bought and
    refunds have not taken, won (or `prevented`) gives it back; an inquiry holds nothing. A
    dispute met before its purchase settles when the purchase is granted."""
    invoice_id = None
    if dispute.grant_entry_id is not None:
        grant = session.get(CreditEntry, dispute.grant_entry_id)
        if grant is not None:
            invoice_id = grant.stripe_invoice_id or (
                grant.source_id if grant.kind == CreditKind.PLAN_CREDITS else None
            )
    settle_payment(
        session,
        ctx,
        payment_intent_id=dispute.payment_intent_id,
        charge_id=dispute.charge_id,
        invoice_id=invoice_id,
        stripe_event_id=stripe_event_id,
    )


def record_movement(
    session: Session,
    dispute: Dispute,
    obj: StripeDict,
    kind: FundsMovement,
    stripe_event_id: str,
) -> None:
    """The balance transaction of this movement (negative when withdrawn), recorded once."""
    withdrawn = kind == FundsMovement.WITHDRAWN
    transactions = [t for t in obj.get("balance_transactions") or [] if isinstance(t, dict)]
    matching = [t for t in transactions if (int(t.get("amount") or 0) < 0) == withdrawn]
    transaction = matching[-1] if matching else {}
    amount = transaction.get("amount", -dispute.amount if withdrawn else dispute.amount)
    record_funds_movement(
        session,
        dispute=dispute,
        kind=kind,
        amount=int(amount),
        fee=int(transaction.get("fee") or 0),
        currency=transaction.get("currency") or dispute.currency,
        balance_transaction_id=transaction.get("id"),
        stripe_event_id=stripe_event_id,
    )


def report(dispute: Dispute) -> None:
    """Every new dispute is a Sentry warning with its ids (never the customer's details)."""
    kind = "inquiry" if dispute.is_inquiry else "chargeback"
    log.warning(
        "dispute %s (%s) on charge %s: %s%s",
        dispute.stripe_dispute_id,
        kind,
        dispute.charge_id,
        dispute.status,
        "" if dispute.linked else ", unlinked",
    )
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("stripe_dispute_id", dispute.stripe_dispute_id)
        scope.set_tag("stripe_charge_id", dispute.charge_id or "")
        scope.set_tag("stripe_payment_intent_id", dispute.payment_intent_id or "")
        scope.set_tag("dispute_linked", str(dispute.linked).lower())
        sentry_sdk.capture_message(
            f"Stripe {kind} {dispute.stripe_dispute_id} opened ({dispute.reason})", "warning"
        )


def apply_lost_action(
    session: Session, ctx: BillingContext, dispute: Dispute, stripe_event_id: str | None
) -> None:
    """DISPUTE_LOST_ACTION=cancel_subscription: a lost chargeback ends the live subscription,
    once per dispute (Stripe's idempotency key `dispute-lost:<dispute id>`)."""
    if ctx.settings.dispute_lost_action != "cancel_subscription" or dispute.account_id is None:
        return
    cancel_live_subscription(
        session,
        ctx,
        account_id=dispute.account_id,
        idempotency_key=f"dispute-lost:{dispute.stripe_dispute_id}",
        why=f"dispute {dispute.stripe_dispute_id} lost",
        stripe_event_id=stripe_event_id,
    )
