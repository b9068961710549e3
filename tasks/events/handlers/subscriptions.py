"""`customer.subscription.created` / `updated` / `deleted`: store the state under the ordering
guard; an upgrade grants the credit difference once; an ended subscription means `free` and
a cancellation email."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from core.plans import Plan
from core.stripe_objects import StripeDict, previous_price_id, unix_time
from db import ledger
from db.models import Account, CreditKind
from db.subscriptions import (
    Cause,
    SubscriptionState,
    SyncResult,
    find_subscription,
    sync_subscription,
)
from tasks.events.event import StripeEvent
from tasks.events.handlers.common import adopt_customer, catalogue, event_time, plan_for_price
from tasks.events.handlers.notices import notify_customer


def apply_stripe_subscription(
    session: Session,
    *,
    account: Account,
    subscription: StripeDict,
    as_of: datetime | None,
    cause: Cause,
    stripe_event_id: str | None = None,
) -> SyncResult:
    """Store a Stripe subscription object: from an event (`as_of` its `created`), or fetched
    or returned by our own call (`as_of` None: Stripe's state now)."""
    state = SubscriptionState.from_stripe(subscription)
    plan = plan_for_price(state.price_id, where=f"subscription {state.stripe_subscription_id}")
    return sync_subscription(
        session,
        account=account,
        state=state,
        plan=plan.id if plan else None,
        as_of=as_of,
        cause=cause,
        stripe_event_id=stripe_event_id,
    )


def subscription_changed(session: Session, event: StripeEvent) -> None:
    subscription = event.object
    account = adopt_customer(session, customer_id=event.customer_id or "", source=subscription)
    result = apply_stripe_subscription(
        session,
        account=account,
        subscription=subscription,
        as_of=event_time(event),
        cause=Cause.EVENT,
        stripe_event_id=event.id,
    )
    previous_price = previous_price_id(event.previous_attributes)
    if event.type == "customer.subscription.updated" and previous_price:
        plan_change(session, account=account, subscription=subscription, old_price=previous_price)
    # Whenever Stripe says it ended, even if a fetch stored `canceled` first: the key makes
    # the email once only.
    if subscription.get("status") == "canceled" and result.subscription.status == "canceled":
        notify_canceled(session, account=account, result=result)


def plan_change(
    session: Session, *, account: Account, subscription: StripeDict, old_price: str
) -> None:
    """An upgrade tops the period's credits up to the new plan's monthly credits, once per
    subscription, new plan and period; a downgrade takes nothing back. Both are told by
    email, once, while the change is still the subscription's current plan.

    "Up to" starts from the highest level the period already reached (its invoice's plan, or
    a plan an earlier upgrade topped it up to), not only from the old plan: when a jump from
    starter to team was granted first (the reconciliation, or events out of order), a late
    event of the step through pro adds nothing, and going down and up again within a period
    pays nothing twice. The customer ends the period with the highest plan's credits."""
    state = SubscriptionState.from_stripe(subscription)
    plans = catalogue()
    old_plan, new_plan = plans.plan_for_price(old_price), plans.plan_for_price(state.price_id)
    if old_plan is None or new_plan is None or old_plan.id == new_plan.id:
        return
    period = int(state.current_period_start.timestamp()) if state.current_period_start else 0
    key = f"{state.stripe_subscription_id}:{state.price_id}:{period}"
    upgrade = new_plan.monthly_credits > old_plan.monthly_credits
    granted = 0
    if upgrade:
        granted = _top_up(
            session,
            account=account,
            state=state,
            key=key,
            period=period,
            old_plan=old_plan,
            new_plan=new_plan,
        )
    stored = find_subscription(session, subscription_id=state.stripe_subscription_id)
    if stored is not None and stored.price_id != state.price_id:
        return  # a late event of a step the subscription has gone past: old news
    notify_customer(
        session,
        account,
        key=f"plan-changed:{key}",
        template="plan_changed",
        context={
            "direction": "upgrade" if upgrade else "downgrade",
            "old_plan_name": old_plan.name,
            "new_plan_name": new_plan.name,
            "new_monthly_credits": new_plan.monthly_credits,
            "credits_granted": granted,
            "period_end": unix_time(state.current_period_end),
        },
    )


def _top_up(
    session: Session,
    *,
    account: Account,
    state: SubscriptionState,
    key: str,
    period: int,
    old_plan: Plan,
    new_plan: Plan,
) -> int:
    """The upgrade credits of this change (granted now, or before under the same key)."""
    earlier = ledger.find_entry(session, kind=CreditKind.UPGRADE_CREDITS, source_id=key)
    if earlier is not None:
        return earlier.amount
    base, upgraded_to = None, []
    if state.current_period_start is not None:
        base, upgraded_to = ledger.period_grants(
            session,
            subscription_id=state.stripe_subscription_id,
            period_start=state.current_period_start,
            period_key=str(period),
        )
    # The level the period's credits reached: its invoice's plan (or, before that invoice is
    # stored, the plan this change leaves) or the highest plan an upgrade already topped it
    # up to. A maximum, not a sum: nothing is counted twice, whatever the order.
    plans = catalogue()
    reached = max(
        [
            old_plan.monthly_credits if base is None else base,
            *(plans.monthly_credits(p.id) for p in map(plans.plan_for_price, upgraded_to) if p),
        ]
    )
    difference = new_plan.monthly_credits - reached
    if difference <= 0:
        return 0
    entry = ledger.add_entry(
        session,
        account_id=account.id,
        kind=CreditKind.UPGRADE_CREDITS,
        source_id=key,
        amount=difference,
        description=f"upgrade {old_plan.id} to {new_plan.id}",
    )
    existing = entry or ledger.find_entry(session, kind=CreditKind.UPGRADE_CREDITS, source_id=key)
    return existing.amount if existing else 0


def notify_canceled(session: Session, *, account: Account, result: SyncResult) -> None:
    row = result.subscription
    plan = catalogue().plan(result.before("plan") or "") if result.before("plan") else None
    notify_customer(
        session,
        account,
        key=f"subscription-canceled:{row.stripe_subscription_id}",
        template="subscription_canceled",
        context={
            "plan_name": plan.name if plan else "paid",
            "ended_at": unix_time(row.current_period_end or row.state_as_of),
            "credits_balance": ledger.balance(session, account_id=account.id),
        },
    )
