"""Subscription lifecycle notices: a trial about to end, a pause and a resume.

`customer.subscription.trial_will_end` (three days before a trial ends): the `trial_ending`
email, only while the subscription is still trialing and not set to cancel, once per trial.

`customer.subscription.paused` / `.resumed`: the subscription is stored like any update (the
ordering guard applies), so `paused` takes the plan away (it is not a live status: no plan and
no period credits while paused, see `period_credits_withheld`) and a resume gives it back;
each sends its email once per pause or resume, unless a newer state has overtaken it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from billing.context import BillingContext
from billing.events import StripeEvent
from billing.notices import notify_customer
from billing.subscriptions import store_subscription_event
from core.stripe_objects import timestamp, unix_time
from db.models import Subscription
from db.subscriptions import find_subscription

PAUSED = "paused"


def trial_will_end(session: Session, ctx: BillingContext, event: StripeEvent) -> None:
    """`customer.subscription.trial_will_end`: the `trial_ending` email, if it still applies."""
    subscription = event.object
    account, result = store_subscription_event(session, ctx, event)
    row = result.subscription
    # The stored row is the newest state known: a trial converted, canceled or set to cancel
    # since this event was sent needs no reminder.
    if row.status != "trialing" or row.cancel_at_period_end or subscription.get("cancel_at"):
        return
    trial_end = timestamp(subscription.get("trial_end")) or row.current_period_end
    plan = ctx.catalogue.plan(row.plan or "")
    notify_customer(
        session,
        ctx,
        account,
        key=f"trial-ending:{row.stripe_subscription_id}:{unix_time(trial_end)}",
        template="trial_ending",
        context={
            "plan_name": plan.name if plan else "paid",
            "monthly_credits": plan.monthly_credits if plan else None,
            "trial_end": unix_time(trial_end),
            "manage_url": ctx.settings.app_billing_url,
        },
    )


def subscription_paused(session: Session, ctx: BillingContext, event: StripeEvent) -> None:
    """`customer.subscription.paused`: store `paused` (the plan goes), then the email."""
    account, result = store_subscription_event(session, ctx, event)
    row = result.subscription
    if row.status != PAUSED:
        return  # a resume or an end overtook this pause
    plan = ctx.catalogue.plan(result.before("plan") or row.plan or "")
    notify_customer(
        session,
        ctx,
        account,
        key=f"subscription-paused:{row.stripe_subscription_id}:{unix_time(event.time)}",
        template="subscription_paused",
        context={
            "plan_name": plan.name if plan else "paid",
            "paused_at": unix_time(event.time),
            "manage_url": ctx.settings.app_billing_url,
        },
    )


def subscription_resumed(session: Session, ctx: BillingContext, event: StripeEvent) -> None:
    """`customer.subscription.resumed`: store the live status (the plan comes back), the email."""
    account, result = store_subscription_event(session, ctx, event)
    row = result.subscription
    if row.status == PAUSED or event.object.get("status") == PAUSED:
        return  # paused again since
    plan = ctx.catalogue.plan(row.plan or "")
    notify_customer(
        session,
        ctx,
        account,
        key=f"subscription-resumed:{row.stripe_subscription_id}:{unix_time(event.time)}",
        template="subscription_resumed",
        context={
            "plan_name": plan.name if plan else "paid",
            "monthly_credits": plan.monthly_credits if plan else None,
            "period_end": unix_time(row.current_period_end),
            "manage_url": ctx.settings.app_billing_url,
        },
    )


def period_credits_withheld(
    session: Session, *, subscription_id: str | None, period_start: datetime | None
) -> bool:
    """Whether a subscription's paid invoice must grant no period credits because the
    subscription is paused, for a period that began after it was paused."""
    if not subscription_id:
        return False
    row: Subscription | None = find_subscription(session, subscription_id=subscription_id)
    if row is None or row.status != PAUSED:
        return False
    return period_start is None or period_start >= row.state_as_of
