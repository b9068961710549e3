"""Subscriptions: Stripe's state stored under the ordering guard, whoever brings it (an event,
our own call's answer, the reconciliation), and what follows from a change: the upgrade's
credits (`upgrades`), the plan-change and cancellation emails.

The guard: state older than what is stored (`state_as_of`) is skipped, equal times apply,
and a subscription that has ended is never brought back.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from billing.accounts import adopt_customer
from billing.context import BillingContext
from billing.events import StripeEvent
from billing.notices import notify_customer
from billing.plans import plan_for_price
from billing.upgrades import record_downgrade, record_upgrade, upgrade_credits, upgrade_key
from core.stripe_objects import (
    TERMINAL_SUBSCRIPTION_STATUSES,
    StripeDict,
    previous_price_id,
    starts_new_period,
    unix_time,
)
from db import ledger
from db.models import Account, Subscription
from db.subscriptions import (
    Cause,
    SubscriptionState,
    SyncResult,
    find_subscription,
    lock_subscription_row,
    record_change,
    refresh_account_plan,
)
from db.upgrades import DOWNGRADE_PREFIX


def fetch_subscription(ctx: BillingContext, subscription_id: str) -> StripeDict | None:
    """Stripe's subscription now; None when Stripe is off or does not know it."""
    return ctx.retrieve(lambda client: client.v1.subscriptions.retrieve(subscription_id))


def sync_subscription(
    session: Session,
    ctx: BillingContext,
    *,
    account: Account,
    state: SubscriptionState,
    plan: str | None,
    as_of: datetime | None,
    cause: Cause,
    stripe_event_id: str | None = None,
) -> SyncResult:
    """Store the state unless what is stored is newer; record a history row for any change.

    `as_of` is Stripe's `created` of the event that described the state. None means the
    object is Stripe's answer right now (a fetch, or the reply to our own call): newer than
    anything stored, so it applies, stamped no earlier than what it replaces."""
    authoritative = as_of is None
    # Stripe's `created` has whole seconds: an event of the same second as our fetch applies.
    as_of = as_of or ctx.now().replace(microsecond=0)
    row, created = lock_subscription_row(session, account=account, state=state, as_of=as_of)
    if not created and _is_stale(row, state, row.state_as_of if authoritative else as_of):
        return SyncResult(subscription=row, applied=False, created=False)
    after = {
        "status": state.status,
        "plan": plan,
        "price_id": state.price_id,
        "cancel_at_period_end": state.cancel_at_period_end,
        "current_period_end": state.current_period_end,
    }
    changes = {
        name: [None if created else getattr(row, name), value]
        for name, value in after.items()
        if created or getattr(row, name) != value
    }
    for name, value in after.items():
        setattr(row, name, value)
    row.current_period_start = state.current_period_start
    row.state_as_of = max(row.state_as_of, as_of)
    row.missing_in_stripe_since = None
    if changes:
        record_change(session, row, changes=changes, cause=cause, stripe_event_id=stripe_event_id)
    refresh_account_plan(session, account)
    return SyncResult(subscription=row, applied=True, created=created, changes=changes)


# Stripe's lifecycle only leaves these forward: at the same second, a state of the first
# group after one of the second is a late delivery (`created(incomplete)` delivered after the
# `updated(active)` its payment caused), not a move back.
_BEFORE_PAYMENT = frozenset({"incomplete"})
_PAID_STATUSES = frozenset({"active", "trialing"})


def _is_stale(row: Subscription, state: SubscriptionState, as_of: datetime) -> bool:
    if as_of < row.state_as_of:
        return True
    if (
        as_of == row.state_as_of
        and row.status in _PAID_STATUSES
        and state.status in _BEFORE_PAYMENT
    ):
        return True
    # Stripe never revives an ended subscription, so a non-final state after a final one is
    # a late delivery, even when Stripe stamped both with the same second.
    return (
        row.status in TERMINAL_SUBSCRIPTION_STATUSES
        and state.status not in TERMINAL_SUBSCRIPTION_STATUSES
    )


def mark_past_due(
    session: Session,
    *,
    account: Account,
    subscription: Subscription,
    as_of: datetime,
    stripe_event_id: str | None = None,
) -> bool:
    """A failed renewal payment makes a paying subscription `past_due`, as Stripe does.

    Only `active` or `trialing` move, and only for an event strictly newer than the stored
    state: an `incomplete` first payment stays incomplete (it never gave a plan), and an
    `unpaid` or ended state that Stripe sent in the same second is not undone."""
    if subscription.status not in ("active", "trialing") or as_of <= subscription.state_as_of:
        return False
    changes = {"status": [subscription.status, "past_due"]}
    subscription.status = "past_due"
    subscription.state_as_of = as_of
    record_change(
        session, subscription, changes=changes, cause=Cause.EVENT, stripe_event_id=stripe_event_id
    )
    refresh_account_plan(session, account)
    return True


def apply_stripe_subscription(
    session: Session,
    ctx: BillingContext,
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
    plan = plan_for_price(ctx, state.price_id, where=f"subscription {state.stripe_subscription_id}")
    return sync_subscription(
        session,
        ctx,
        account=account,
        state=state,
        plan=plan.id if plan else None,
        as_of=as_of,
        cause=cause,
        stripe_event_id=stripe_event_id,
    )


def store_subscription_event(
    session: Session, ctx: BillingContext, event: StripeEvent
) -> tuple[Account, SyncResult]:
    """Any `customer.subscription.*` event: its customer adopted, its subscription stored as
    of the event's time (an older event never overwrites a newer state)."""
    subscription = event.object
    account = adopt_customer(session, ctx, customer_id=event.customer_id or "", source=subscription)
    return account, apply_stripe_subscription(
        session,
        ctx,
        account=account,
        subscription=subscription,
        as_of=event.time,
        cause=Cause.EVENT,
        stripe_event_id=event.id,
    )


def subscription_changed(session: Session, ctx: BillingContext, event: StripeEvent) -> None:
    """`customer.subscription.created` / `updated` / `deleted`: store, follow a plan change."""
    subscription = event.object
    account, result = store_subscription_event(session, ctx, event)
    previous_price = previous_price_id(event.previous_attributes)
    if event.type == "customer.subscription.updated" and previous_price:
        plan_change(
            session,
            ctx,
            account=account,
            subscription=subscription,
            old_price=previous_price,
            starts_period=starts_new_period(subscription, event.previous_attributes),
            changed_at=event.time,
            stripe_event_id=event.id,
        )
    # Whenever Stripe says it ended, even if a fetch stored `canceled` first: the key makes
    # the email once only.
    if subscription.get("status") == "canceled" and result.subscription.status == "canceled":
        notify_canceled(session, ctx, account=account, result=result)


def plan_change(
    session: Session,
    ctx: BillingContext,
    *,
    account: Account,
    subscription: StripeDict,
    old_price: str,
    starts_period: bool = False,
    changed_at: datetime | None = None,
    stripe_event_id: str | None = None,
) -> None:
    """An upgrade is recorded, and its credits granted once the invoice paying its proration
    is paid (see `upgrades`): at once when that invoice is already stored as paid, else when
    it is; a downgrade takes back its share of the period's top-ups; both prorated by the time
    left at the change (`changed_at`, the event's time; now for our own call's answer and the
    reconciliation). Both are told by email, once, while the change is
    still the subscription's current plan; the email counts the credits granted so far.

    A change that starts a new period (`starts_period`) grants nothing by itself: the period's
    own invoice grants what its line price bills, so there is no top-up to record."""
    state = SubscriptionState.from_stripe(subscription)
    plans = ctx.catalogue
    old_plan, new_plan = plans.plan_for_price(old_price), plans.plan_for_price(state.price_id)
    if old_plan is None or new_plan is None or old_plan.id == new_plan.id:
        return
    upgrade = new_plan.monthly_credits > old_plan.monthly_credits
    granted, change_key = 0, upgrade_key(state)
    if not starts_period:
        record = record_upgrade if upgrade else record_downgrade
        change = record(
            session,
            ctx,
            account=account,
            state=state,
            old_price=old_price,
            changed_at=changed_at or ctx.now(),
            stripe_event_id=stripe_event_id,
        )
        granted = upgrade_credits(session, change)
        change_key = change.key.removeprefix(DOWNGRADE_PREFIX)
    stored = find_subscription(session, subscription_id=state.stripe_subscription_id)
    if stored is not None and stored.price_id != state.price_id:
        return  # a late event of a step the subscription has gone past: old news
    notify_customer(
        session,
        ctx,
        account,
        key=f"plan-changed:{change_key}",
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


def notify_canceled(
    session: Session, ctx: BillingContext, *, account: Account, result: SyncResult
) -> None:
    """The cancellation email, once per subscription, with the plan it ended."""
    row = result.subscription
    plan = ctx.catalogue.plan(result.before("plan") or "") if result.before("plan") else None
    notify_customer(
        session,
        ctx,
        account,
        key=f"subscription-canceled:{row.stripe_subscription_id}",
        template="subscription_canceled",
        context={
            "plan_name": plan.name if plan else "paid",
            "ended_at": unix_time(row.current_period_end or row.state_as_of),
            "credits_balance": ledger.balance(session, account_id=account.id),
        },
    )
