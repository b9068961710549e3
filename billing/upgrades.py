"""Upgrade credits follow the money. An upgrade within a period tops the period's credits up
to the new plan's once the invoice that pays its proration is paid, not when the subscription
changes: a customer cannot upgrade, spend and downgrade on an unpaid invoice.

The upgrade is recorded (`upgrade_top_ups`, once per subscription, new price and period) when
the subscription changes; the paid invoice is stored with its proration lines. Whichever of
the two comes second grants the credits: a paid invoice with a charging proration line of the
subscription and the new price within the period. That is the upgrade's own invoice under
`always_invoice`, the next renewal under `create_prorations`, and an invoice with nothing to
pay (a customer balance, a coupon) counts as paid. The ledger entry carries that invoice and
its payment, so a refund or a dispute of the payment takes the credits back, as it does a
period's. An upgrade made without proration (`none`) is never paid for within its period, so
it grants nothing: the next renewal pays for the new plan.

How much: the new plan's monthly credits above the highest level the period reached when the
upgrade is paid (its invoice's plan, or before that invoice is stored the plan the change left,
or a plan an upgrade already paid for topped it up to). A maximum, not a sum, worked out at
payment: whatever the order, nothing is counted twice and an unpaid step counts for nothing.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from billing.context import BillingContext
from billing.settlement import bring_ledger_to
from core.plans import Plan
from db import ledger
from db.invoices import paid_invoices_prorating
from db.models import Account, CreditKind, Invoice, UpgradeTopUp
from db.subscriptions import SubscriptionState
from db.upgrades import mark_settled, pays_for, record_top_up, settled_by, unpaid_top_ups


def upgrade_key(state: SubscriptionState) -> str:
    """`<subscription>:<new price>:<period start>`: the row's key and its ledger entry's."""
    start = state.current_period_start
    period = int(start.timestamp()) if start else 0
    return f"{state.stripe_subscription_id}:{state.price_id}:{period}"


def record_upgrade(
    session: Session,
    ctx: BillingContext,
    *,
    account: Account,
    state: SubscriptionState,
    old_price: str,
    stripe_event_id: str | None,
) -> int:
    """Record an upgrade from `old_price`, and grant it at once if a stored paid invoice
    already carries its proration (the invoice's events came first); the credits granted for
    it so far."""
    if state.price_id is None:
        raise ValueError(f"subscription {state.stripe_subscription_id} has no price")
    key = upgrade_key(state)
    top_up = record_top_up(
        session,
        account_id=account.id,
        key=key,
        subscription_id=state.stripe_subscription_id,
        price_id=state.price_id,
        old_price_id=old_price,
        period_start=state.current_period_start,
        period_end=state.current_period_end,
        stripe_event_id=stripe_event_id,
    )
    if top_up.settled_at is None:
        invoices = paid_invoices_prorating(
            session,
            account_id=account.id,
            subscription_id=top_up.stripe_subscription_id,
            price_id=top_up.price_id,
        )
        paid = next((i for i in invoices if any(pays_for(p, top_up) for p in i.prorations)), None)
        if paid is not None:
            _settle(session, ctx, top_up, invoice=paid, stripe_event_id=stripe_event_id)
    granted = ledger.find_entry(session, kind=CreditKind.UPGRADE_CREDITS, source_id=key)
    return granted.amount if granted else 0


def settle_upgrades(
    session: Session, ctx: BillingContext, *, invoice: Invoice, stripe_event_id: str | None
) -> int:
    """Grant the recorded upgrades whose proration this stored invoice paid; the credits it
    granted for upgrades (the same on a repeat, for the receipt)."""
    if invoice.status != "paid":
        return 0
    for proration in invoice.prorations:
        subscription_id, price_id = proration.get("subscription"), proration.get("price")
        if not subscription_id or not price_id:
            continue
        for top_up in unpaid_top_ups(session, subscription_id=subscription_id, price_id=price_id):
            if top_up.account_id == invoice.account_id and pays_for(proration, top_up):
                _settle(session, ctx, top_up, invoice=invoice, stripe_event_id=stripe_event_id)
    return sum(t.credits or 0 for t in settled_by(session, invoice_id=invoice.stripe_invoice_id))


def _settle(
    session: Session,
    ctx: BillingContext,
    top_up: UpgradeTopUp,
    *,
    invoice: Invoice,
    stripe_event_id: str | None,
) -> None:
    """Grant the upgrade's difference, tied to the invoice and the payment that paid it."""
    plans = ctx.catalogue
    old_plan = plans.plan_for_price(top_up.old_price_id)
    new_plan = plans.plan_for_price(top_up.price_id)
    credits = _difference(session, ctx, top_up, old_plan=old_plan, new_plan=new_plan)
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
            stripe_event_id=stripe_event_id,
            description=(
                f"upgrade {old_plan.id if old_plan else top_up.old_price_id} to {new_plan.id}, "
                f"invoice {invoice.stripe_invoice_id}"
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
        stripe_event_id=stripe_event_id,
    )


def _difference(
    session: Session,
    ctx: BillingContext,
    top_up: UpgradeTopUp,
    *,
    old_plan: Plan | None,
    new_plan: Plan | None,
) -> int:
    """The new plan's credits above the highest level the period has reached by now."""
    if new_plan is None:
        return 0
    plans = ctx.catalogue
    base, upgraded_to = None, []
    if top_up.period_start is not None:
        base, upgraded_to = ledger.period_grants(
            session,
            subscription_id=top_up.stripe_subscription_id,
            period_start=top_up.period_start,
            period_key=str(int(top_up.period_start.timestamp())),
        )
    left = old_plan.monthly_credits if old_plan else 0
    reached = max(
        [
            left if base is None else base,
            *(plans.monthly_credits(p.id) for p in map(plans.plan_for_price, upgraded_to) if p),
        ]
    )
    return new_plan.monthly_credits - reached
