"""Spending credits: the ledger refuses to go below zero, and a spend that takes the balance
under the plan's threshold warns the customer once per grant.

The customer's lock (in `ledger.consume`) makes concurrent spends of different keys take
turns, so two can never both spend the last credit; a repeated key spends once."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from billing.context import BillingContext
from billing.notices import notify_customer
from core.stripe_objects import unix_time
from db import ledger
from db.accounts import account_of_user
from db.models import Account, CreditEntry
from db.subscriptions import live_subscription


@dataclass(frozen=True, slots=True)
class Spent:
    entry: CreditEntry
    balance: int


@dataclass(frozen=True, slots=True)
class Short:
    """The balance does not cover the amount: nothing was spent."""

    balance: int
    amount: int


def spend_credits(
    session: Session,
    ctx: BillingContext,
    *,
    user_id: str,
    key: str,
    amount: int,
    reason: str | None,
) -> Spent | Short:
    """Spend `amount` credits of the user's balance under `key`, or say it is short."""
    account = account_of_user(session, user_id=user_id)
    if account is None:
        return Short(balance=0, amount=amount)
    try:
        entry = ledger.consume(
            session, account_id=account.id, amount=amount, key=key, description=reason
        )
    except ledger.InsufficientCredits as exc:
        return Short(balance=exc.balance, amount=amount)
    balance = ledger.balance(session, account_id=account.id)
    warn_when_low(session, ctx, account=account, balance=balance, spent=amount)
    return Spent(entry=entry, balance=balance)


def warn_when_low(
    session: Session, ctx: BillingContext, *, account: Account, balance: int, spent: int
) -> None:
    """Email once when a spend takes the balance below the plan's threshold: once per grant,
    so the next period's (or pack's) credits can warn again."""
    plan = ctx.catalogue.plan(account.plan)
    if plan is None or not (balance < plan.credits_low_threshold <= balance + spent):
        return
    grant = ledger.latest_grant(session, account_id=account.id)
    live = live_subscription(session, account_id=account.id)
    notify_customer(
        session,
        ctx,
        account,
        key=f"credits-low:{account.id}:{grant.id if grant else 0}",
        template="credits_low",
        context={
            "credits_balance": balance,
            "threshold": plan.credits_low_threshold,
            "plan_name": plan.name,
            "period_end": unix_time(live.current_period_end) if live else None,
            "upgrade_url": ctx.settings.app_billing_url,
        },
    )
