"""The dispute lifecycle: `charge.dispute.created`, `.updated`, `.closed`, `.funds_withdrawn`,
`.funds_reinstated`.

A chargeback holds back the credits its payment granted (one entry keyed by the dispute id)
and gives them back once if it is won; a lost one keeps the hold. An inquiry holds nothing.
Funds movements are recorded once each and never touch the ledger. Admins hear when a
dispute opens and when it closes. The billing API's evidence and accept actions store
Stripe's answer through `apply_dispute` too, so both paths keep the same rules.
"""

from __future__ import annotations

import logging
from datetime import datetime

import sentry_sdk
import stripe
from sqlalchemy.orm import Session

from core.observability import redact_email
from core.settings import get_settings
from core.stripe_objects import StripeDict, object_id, unix_time
from db import ledger
from db.accounts import ensure_account
from db.disputes import (
    CLOSED_STATUSES,
    DisputeCause,
    DisputeState,
    DisputeSync,
    FundsMovement,
    find_dispute,
    link,
    record_funds_movement,
    sync_dispute,
)
from db.locks import advisory_lock, lock_customer
from db.models import Account, CreditEntry, CreditKind, Dispute
from db.subscriptions import Cause, live_subscription
from tasks.emails import queue_email
from tasks.events.event import StripeEvent
from tasks.events.handlers.common import (
    event_time,
    invoice_of_payment,
    retrieve_or_none,
    stripe_client,
)
from tasks.events.handlers.subscriptions import apply_stripe_subscription

log = logging.getLogger("billing.disputes")

# A won chargeback gives its hold back; so does a `prevented` one, which Stripe resolves with
# a refund (and `charge.refunded` takes the credits back itself).
RELEASING_STATUSES = ("won", "prevented")

FUNDS_EVENTS = {
    "charge.dispute.funds_withdrawn": FundsMovement.WITHDRAWN,
    "charge.dispute.funds_reinstated": FundsMovement.REINSTATED,
}


def dispute_event(session: Session, event: StripeEvent) -> None:
    """Every dispute event: store the newest state, keep the ledger and the people in step."""
    result = apply_dispute(
        session,
        dispute=event.object,
        as_of=event_time(event),
        cause=DisputeCause.EVENT,
        stripe_event_id=event.id,
        client=stripe_client(),
    )
    movement = FUNDS_EVENTS.get(event.type)
    if movement is not None:
        record_movement(session, result.dispute, event.object, movement, event.id)


def apply_dispute(
    session: Session,
    *,
    dispute: StripeDict,
    as_of: datetime | None,
    cause: DisputeCause,
    stripe_event_id: str | None,
    client: stripe.StripeClient | None,
) -> DisputeSync:
    """Store a Stripe dispute object (from an event or an API answer) and apply its effects."""
    state = DisputeState.from_stripe(dispute)
    # Events of one dispute may name no customer: serialise them on the dispute itself.
    advisory_lock(session, f"dispute:{state.stripe_dispute_id}")
    stored = find_dispute(session, dispute_id=state.stripe_dispute_id)
    account, grant = (None, None)
    if stored is None or stored.grant_entry_id is None:
        account, grant = find_what_it_paid_for(session, state, client)
    if account is None and stored is not None and stored.account_id is not None:
        account = session.get(Account, stored.account_id)
    if account is not None:
        # Holds and releases change the balance: in step with everything else on the account.
        lock_customer(session, account.stripe_customer_id)
    result = sync_dispute(
        session, state=state, as_of=as_of, cause=cause, stripe_event_id=stripe_event_id
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
    hold_or_release_credits(session, row)
    notify_admins(session, row)
    if result.closed_now and row.status == "lost" and not row.is_inquiry:
        apply_lost_action(session, row, client, stripe_event_id)
    return result


def find_what_it_paid_for(
    session: Session, state: DisputeState, client: stripe.StripeClient | None
) -> tuple[Account | None, CreditEntry | None]:
    """The account and the grant of the disputed payment: from the ledger (by payment intent
    or charge, through the invoice it paid), else from Stripe (the charge's invoice and
    customer; in newer API versions the invoice payments of the payment intent)."""
    grant = ledger.find_grant_of_payment(
        session, payment_intent_id=state.payment_intent_id, charge_id=state.charge_id
    )
    if grant is not None:
        return session.get(Account, grant.account_id), grant
    if client is None or state.charge_id is None:
        return None, None
    charge = retrieve_or_none(lambda: client.v1.charges.retrieve(state.charge_id or ""))
    if charge is None:
        return None, None
    intent = state.payment_intent_id or object_id(charge.get("payment_intent"))
    invoice_id = object_id(charge.get("invoice")) or invoice_of_payment(client, intent)
    if invoice_id:
        grant = ledger.find_entry(session, kind=CreditKind.PLAN_CREDITS, source_id=invoice_id)
    customer_id = object_id(charge.get("customer"))
    if grant is not None:
        return session.get(Account, grant.account_id), grant
    if customer_id:
        # Before the account insert: a concurrent event of the same new customer holds this
        # lock around its own insert, so taking it later could deadlock.
        lock_customer(session, customer_id)
        return ensure_account(session, customer_id=customer_id)[0], None
    return None, None


def hold_or_release_credits(session: Session, dispute: Dispute) -> None:
    """A chargeback (not an inquiry) holds back what its payment granted and refunds have not
    already taken back, once; won (or `prevented`, which Stripe settles by refunding) gives
    the hold back, once. Both entries are keyed by the dispute id, whatever the order."""
    if dispute.is_inquiry or dispute.grant_entry_id is None:
        return
    grant = session.get(CreditEntry, dispute.grant_entry_id)
    assert grant is not None
    refunded = -ledger.sum_by_source_prefix(
        session, kind=CreditKind.REFUND, prefix=f"{dispute.charge_id}:"
    )
    still_granted = max(0, grant.amount - refunded)
    if still_granted:
        ledger.add_entry(
            session,
            account_id=grant.account_id,
            kind=CreditKind.DISPUTE_HOLD,
            source_id=dispute.stripe_dispute_id,
            amount=-still_granted,
            payment_intent_id=dispute.payment_intent_id,
            charge_id=dispute.charge_id,
            description=f"held back while chargeback {dispute.stripe_dispute_id} is open",
        )
    hold = ledger.find_entry(
        session, kind=CreditKind.DISPUTE_HOLD, source_id=dispute.stripe_dispute_id
    )
    if hold is not None and dispute.status in RELEASING_STATUSES:
        ledger.add_entry(
            session,
            account_id=grant.account_id,
            kind=CreditKind.DISPUTE_RELEASE,
            source_id=dispute.stripe_dispute_id,
            amount=-hold.amount,
            payment_intent_id=dispute.payment_intent_id,
            charge_id=dispute.charge_id,
            description=f"chargeback {dispute.stripe_dispute_id} {dispute.status}",
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


def notify_admins(session: Session, dispute: Dispute) -> None:
    """One alert when it opens (again if an inquiry becomes a chargeback), one when it closes."""
    settings = get_settings()
    recipients = list(settings.admin_addresses)
    if not recipients:
        log.warning("dispute %s: ADMIN_EMAILS is empty, nobody is told", dispute.stripe_dispute_id)
        return
    context = {
        "dispute_id": dispute.stripe_dispute_id,
        "amount": dispute.amount,
        "currency": dispute.currency,
        "reason": dispute.reason or "unknown",
        "status": dispute.status,
        "customer": describe_customer(session, dispute),
        "dashboard_url": dashboard_url(dispute),
    }
    if dispute.status in CLOSED_STATUSES:
        outcome = dispute.status if dispute.status in ("won", "lost") else "closed"
        key, template = f"dispute-closed:{dispute.stripe_dispute_id}", "dispute_closed"
        context["outcome"] = outcome
    else:
        kind = "inquiry" if dispute.is_inquiry else "chargeback"
        key, template = f"dispute-opened:{dispute.stripe_dispute_id}:{kind}", "dispute_opened"
        context.update(
            is_inquiry=dispute.is_inquiry,
            unlinked=not dispute.linked and not dispute.is_inquiry,
            due_by=unix_time(dispute.evidence_due_by),
        )
    queue_email(session, key=key, template=template, recipients=recipients, context=context)


def describe_customer(session: Session, dispute: Dispute) -> str:
    account = session.get(Account, dispute.account_id) if dispute.account_id else None
    if account is None:
        return "unknown (unlinked)"
    email = f" ({redact_email(account.email)})" if account.email else ""
    return f"{account.stripe_customer_id}{email}"


def dashboard_url(dispute: Dispute) -> str:
    mode = "" if dispute.livemode else "test/"
    return f"https://dashboard.stripe.com/{mode}disputes/{dispute.stripe_dispute_id}"


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
    session: Session,
    dispute: Dispute,
    client: stripe.StripeClient | None,
    stripe_event_id: str | None,
) -> None:
    """DISPUTE_LOST_ACTION=cancel_subscription: a lost chargeback ends the live subscription."""
    if get_settings().dispute_lost_action != "cancel_subscription" or dispute.account_id is None:
        return
    subscription = live_subscription(session, account_id=dispute.account_id)
    if subscription is None:
        return
    if client is None:
        log.warning(
            "dispute %s lost: no Stripe key to cancel %s",
            dispute.stripe_dispute_id,
            subscription.stripe_subscription_id,
        )
        return
    subscription_id = subscription.stripe_subscription_id
    try:
        canceled: StripeDict | None = client.v1.subscriptions.cancel(subscription_id).to_dict()
    except stripe.InvalidRequestError as exc:
        # Already canceled in Stripe (a late `deleted` event, or dunning got there first):
        # store what Stripe has instead of failing the dispute's event for good.
        log.info(
            "dispute %s lost: %s not canceled: %s", dispute.stripe_dispute_id, subscription_id, exc
        )
        canceled = retrieve_or_none(lambda: client.v1.subscriptions.retrieve(subscription_id))
        if canceled is None:
            return
    account = session.get(Account, dispute.account_id)
    assert account is not None
    apply_stripe_subscription(
        session,
        account=account,
        subscription=canceled,
        as_of=None,  # Stripe's answer: its state now
        cause=Cause.EVENT,
        stripe_event_id=stripe_event_id,
    )
