"""Plan changes within a period move credits in proportion to the time left, and follow the
money. An upgrade tops the period up by the plans' difference times the share of the period
that remains at the change, once the invoice that pays its proration is paid, not when the
subscription changes: a customer cannot upgrade, spend and downgrade on an unpaid invoice. A
downgrade in the same period takes back the difference times the share that remains, never
more than the period's top-ups: what is taken back is only what an upgrade gave.

The upgrade is recorded (`upgrade_top_ups`, once per subscription, new price and period) when
the subscription changes; the paid invoice is stored with its proration lines. Whichever of
the two comes second grants the credits: a paid invoice with a charging proration line of the
subscription and the new price within the period. That is the upgrade's own invoice under
`always_invoice`, the next renewal under `create_prorations`, and an invoice with nothing to
pay (a customer balance, a coupon) counts as paid. The ledger entry carries that invoice and
its payment, so a refund or a dispute of the payment takes the credits back, as it does a
period's. An upgrade made without proration (`none`) is never paid for within its period, so
it grants nothing: the next renewal pays for the new plan.

How much: (new - old monthly credits) * remaining / period, rounded down, where `remaining` is
the paying proration line's window (Stripe bills exactly the time left) and, for a downgrade,
from the change's event time to the period's end. Each step is keyed by subscription, new
price and period, so a duplicate, or going down and up again to a plan already paid for in
the period, adds nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from billing.context import BillingContext
from billing.settlement import bring_ledger_to, gather, kept
from core.stripe_objects import timestamp
from db import ledger
from db.invoices import paid_invoices_prorating
from db.models import Account, CreditKind, Invoice, UpgradeTopUp
from db.subscriptions import SubscriptionState
from db.upgrades import (
    DOWNGRADE_PREFIX,
    changes_of_period,
    mark_settled,
    pays_for,
    record_top_up,
    settled_by,
    top_ups_by_key,
    unpaid_top_ups,
)


def upgrade_key(state: SubscriptionState) -> str:
    """`<subscription>:<new price>:<period start>`: the step's key; each change's row (and its
    ledger entry) adds the change's time to it (`db.upgrades.record_top_up`)."""
    start = state.current_period_start
    period = int(start.timestamp()) if start else 0
    return f"{state.stripe_subscription_id}:{state.price_id}:{period}"


def remaining_share(
    credits: int,
    *,
    start: datetime | None,
    end: datetime | None,
    period_start: datetime | None,
    period_end: datetime | None,
) -> int:
    """`credits` times the part of the period within [start, end], rounded down; all of them when
    the period is not known (nothing to prorate by)."""
    if credits <= 0:
        return 0
    if period_start is None or period_end is None or period_end <= period_start:
        return credits
    window_start = max(start or period_start, period_start)
    window_end = min(end or period_end, period_end)
    length = int((period_end - period_start).total_seconds())
    left = max(int((window_end - window_start).total_seconds()), 0)
    return credits * left // length


def record_upgrade(
    session: Session,
    ctx: BillingContext,
    *,
    account: Account,
    state: SubscriptionState,
    old_price: str,
    changed_at: datetime,
    stripe_event_id: str | None,
) -> UpgradeTopUp:
    """Record an upgrade from `old_price`, and grant it at once if a stored paid invoice
    already carries its proration (the invoice's events came first)."""
    if state.price_id is None:
        raise ValueError(f"subscription {state.stripe_subscription_id} has no price")
    top_up = record_top_up(
        session,
        account_id=account.id,
        base_key=upgrade_key(state),
        subscription_id=state.stripe_subscription_id,
        price_id=state.price_id,
        old_price_id=old_price,
        period_start=state.current_period_start,
        period_end=state.current_period_end,
        changed_at=changed_at,
        stripe_event_id=stripe_event_id,
    )
    if top_up.settled_at is None:
        invoices = paid_invoices_prorating(
            session,
            account_id=account.id,
            subscription_id=top_up.stripe_subscription_id,
            price_id=top_up.price_id,
        )
        for invoice in invoices:
            lines = _lines_left(session, invoice, top_up)
            if lines:
                _settle(session, ctx, top_up, invoice=invoice, line=lines[0], event=stripe_event_id)
                break
    return top_up


def upgrade_credits(session: Session, top_up: UpgradeTopUp) -> int:
    """The credits granted for an upgrade so far."""
    granted = ledger.find_entry(session, kind=CreditKind.UPGRADE_CREDITS, source_id=top_up.key)
    return granted.amount if granted else 0


def record_downgrade(
    session: Session,
    ctx: BillingContext,
    *,
    account: Account,
    state: SubscriptionState,
    old_price: str,
    changed_at: datetime,
    stripe_event_id: str | None,
) -> UpgradeTopUp:
    """Record a downgrade from `old_price` and take back its share of the period's top-ups
    (now, or when a top-up of the period is granted later: whichever comes second)."""
    if state.price_id is None:
        raise ValueError(f"subscription {state.stripe_subscription_id} has no price")
    # Nothing to wait for: a downgrade's invoice pays nothing, so the row is settled at once.
    row = record_top_up(
        session,
        account_id=account.id,
        base_key=DOWNGRADE_PREFIX + upgrade_key(state),
        subscription_id=state.stripe_subscription_id,
        price_id=state.price_id,
        old_price_id=old_price,
        period_start=state.current_period_start,
        period_end=state.current_period_end,
        changed_at=changed_at,
        stripe_event_id=stripe_event_id,
        settled_at=ctx.now(),
    )
    take_back_downgrades(
        session,
        ctx,
        subscription_id=state.stripe_subscription_id,
        period_start=state.current_period_start,
        stripe_event_id=stripe_event_id,
    )
    return row


def settle_upgrades(
    session: Session, ctx: BillingContext, *, invoice: Invoice, stripe_event_id: str | None
) -> int:
    """Grant the recorded upgrades whose proration this stored invoice paid, each paying line
    to one upgrade (the one that changed nearest the line's start, as Stripe prorates from
    the change); the credits it granted for upgrades (the same on a repeat, for the receipt)."""
    if invoice.status != "paid":
        return 0
    steps = {
        (p.get("subscription"), p.get("price"))
        for p in invoice.prorations
        if p.get("subscription") and p.get("price") and int(p.get("amount") or 0) > 0
    }
    for subscription_id, price_id in sorted(steps):
        unpaid = [
            top_up
            for top_up in unpaid_top_ups(
                session, subscription_id=subscription_id, price_id=price_id
            )
            if top_up.account_id == invoice.account_id
        ]
        while unpaid:
            lines = _lines_left(session, invoice, unpaid[0])
            if not lines:
                break
            line = lines[0]
            candidates = [top_up for top_up in unpaid if pays_for(line, top_up)]
            if not candidates:
                break
            top_up = min(candidates, key=lambda t: _distance(t, line))
            _settle(session, ctx, top_up, invoice=invoice, line=line, event=stripe_event_id)
            unpaid.remove(top_up)
    return sum(t.credits or 0 for t in settled_by(session, invoice_id=invoice.stripe_invoice_id))


def _lines_left(session: Session, invoice: Invoice, top_up: UpgradeTopUp) -> list[dict[str, Any]]:
    """The invoice's proration lines that pay for the upgrade's step and have not paid for
    another change of it yet, by their start."""
    paying = sorted(
        (p for p in invoice.prorations if pays_for(p, top_up)),
        key=lambda p: int(p.get("start") or 0),
    )
    used = sum(
        1
        for other in settled_by(session, invoice_id=invoice.stripe_invoice_id)
        if other.price_id == top_up.price_id
        and other.stripe_subscription_id == top_up.stripe_subscription_id
    )
    return paying[used:]


def _distance(top_up: UpgradeTopUp, line: dict[str, Any]) -> float:
    start = timestamp(line.get("start"))
    changed = top_up.changed_at or top_up.created_at
    if start is None or changed is None:
        return 0.0
    return abs((start - changed).total_seconds())


def _settle(
    session: Session,
    ctx: BillingContext,
    top_up: UpgradeTopUp,
    *,
    invoice: Invoice,
    line: dict[str, Any],
    event: str | None,
) -> None:
    """Grant the upgrade's prorated difference, tied to the invoice and the payment that paid
    it; then the period's downgrades may take their share of it."""
    plans = ctx.catalogue
    old_plan = plans.plan_for_price(top_up.old_price_id)
    new_plan = plans.plan_for_price(top_up.price_id)
    difference = (new_plan.monthly_credits if new_plan else 0) - (
        old_plan.monthly_credits if old_plan else 0
    )
    # The proration line bills exactly the time left at the change.
    credits = remaining_share(
        difference,
        start=timestamp(line.get("start")) or top_up.changed_at,
        end=timestamp(line.get("end")),
        period_start=top_up.period_start,
        period_end=top_up.period_end,
    )
    entry = None
    if credits > 0 and new_plan is not None:
        entry = ledger.add_entry(
            session,
            account_id=top_up.account_id,
            kind=CreditKind.UPGRADE_CREDITS,
            source_id=top_up.key,
            amount=credits,
            payment_intent_id=invoice.payment_intent_id,
            charge_id=invoice.charge_id,
            stripe_invoice_id=invoice.stripe_invoice_id,
            stripe_event_id=event,
            description=(
                f"upgrade {old_plan.id if old_plan else top_up.old_price_id} to {new_plan.id} "
                f"for the period's remaining time, invoice {invoice.stripe_invoice_id}"
            ),
        )
    mark_settled(top_up, invoice=invoice, credits=entry.amount if entry else 0, at=ctx.now())
    session.flush()
    # A refund or a dispute of the payment that came before the upgrade takes its share.
    bring_ledger_to(
        session,
        payment_intent_id=invoice.payment_intent_id,
        charge_id=invoice.charge_id,
        invoice_id=invoice.stripe_invoice_id,
        stripe_event_id=event,
    )
    take_back_downgrades(
        session,
        ctx,
        subscription_id=top_up.stripe_subscription_id,
        period_start=top_up.period_start,
        stripe_event_id=event,
    )


def settle_payment(
    session: Session,
    ctx: BillingContext,
    *,
    payment_intent_id: str | None,
    charge_id: str | None,
    invoice_id: str | None = None,
    stripe_event_id: str | None = None,
) -> None:
    """A new fact about a payment (a refund, a credit note, a dispute): bring its ledger to
    what its facts say, then the downgrades of the periods whose top-ups it paid for, which
    take back only what those top-ups still hold."""
    bring_ledger_to(
        session,
        payment_intent_id=payment_intent_id,
        charge_id=charge_id,
        invoice_id=invoice_id,
        stripe_event_id=stripe_event_id,
    )
    payment = gather(
        session, payment_intent_id=payment_intent_id, charge_id=charge_id, invoice_id=invoice_id
    )
    keys = [g.source_id for g in payment.grants if g.kind == CreditKind.UPGRADE_CREDITS]
    for top_up in top_ups_by_key(session, keys=keys):
        take_back_downgrades(
            session,
            ctx,
            subscription_id=top_up.stripe_subscription_id,
            period_start=top_up.period_start,
            stripe_event_id=stripe_event_id,
        )


def take_back_downgrades(
    session: Session,
    ctx: BillingContext,
    *,
    subscription_id: str,
    period_start: datetime | None,
    stripe_event_id: str | None,
) -> None:
    """Bring each downgrade of the period to its share, in the order of the changes: its
    prorated difference, within what the period's top-ups still hold once their payments'
    refunds, credit notes and disputes have taken theirs, and earlier downgrades theirs (a
    downgrade never takes from the period's own invoice: down and up again pays nothing
    twice). Each
    target is a function of the stored facts, and the ledger is moved to it either way (a
    refund of the top-up after the downgrade gives the downgrade's excess back), so the result
    is the same whichever order the changes, payments and refunds arrived in."""
    if period_start is None:
        return
    changes = changes_of_period(session, subscription_id=subscription_id, period_start=period_start)
    upgrades = [c for c in changes if not c.key.startswith(DOWNGRADE_PREFIX)]
    grants = [
        ledger.find_entry(session, kind=CreditKind.UPGRADE_CREDITS, source_id=change.key)
        for change in upgrades
    ]
    room = sum(kept(session, grant) for grant in grants if grant is not None)
    plans = ctx.catalogue
    for change in changes:
        if change in upgrades:
            continue
        old_plan = plans.plan_for_price(change.old_price_id)
        new_plan = plans.plan_for_price(change.price_id)
        difference = (old_plan.monthly_credits if old_plan else 0) - (
            new_plan.monthly_credits if new_plan else 0
        )
        share = remaining_share(
            difference,
            start=change.changed_at or change.created_at,
            end=None,
            period_start=change.period_start,
            period_end=change.period_end,
        )
        target = min(share, max(room, 0))
        room -= target
        key = change.key.removeprefix(DOWNGRADE_PREFIX)
        taken = -ledger.sum_of_key(session, kind=CreditKind.DOWNGRADE_CREDITS, key=key)
        if target != taken:
            ledger.add_adjustment(
                session,
                account_id=change.account_id,
                kind=CreditKind.DOWNGRADE_CREDITS,
                key=key,
                amount=taken - target,
                stripe_event_id=stripe_event_id,
                description=(
                    f"downgrade {old_plan.id if old_plan else change.old_price_id} to "
                    f"{new_plan.id if new_plan else change.price_id} for the period's "
                    "remaining time"
                    + ("" if target > taken else ", less: its top-ups were refunded or disputed")
                ),
            )
