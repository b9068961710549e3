"""Spending credits from the host application, exactly once per `Idempotency-Key`.

The first answer under a key (the spend, or the refusal of a short balance) is stored in the
same transaction as the spend, so a retry gets that answer again whatever happened since,
and the same key with another body is refused. The key's lock makes concurrent retries wait
for the first; the customer's lock (in `ledger.consume`) makes concurrent spends of
different keys take turns, so two can never both spend the last credit."""

from __future__ import annotations

from sqlalchemy.orm import Session

from api.auth import User
from api.billing.idempotent_requests import Answer, earlier_answer, keep_answer
from core.plans import Catalogue
from core.settings import Settings
from core.stripe_objects import unix_time
from db import ledger
from db.accounts import account_of_user
from db.models import Account
from db.subscriptions import live_subscription
from tasks.events.handlers.notices import notify_customer

OPERATION = "credits.consume"


def consume_credits(
    session: Session,
    *,
    user: User,
    key: str,
    amount: int,
    reason: str | None,
    catalogue: Catalogue,
    settings: Settings,
) -> Answer:
    """Spend `amount` credits of the user's balance once for this key."""
    request = {"amount": amount, "reason": reason}
    earlier = earlier_answer(
        session, user_id=user.id, operation=OPERATION, key=key, request=request
    )
    if earlier is not None:
        return earlier
    answer = _spend(
        session,
        user=user,
        key=key,
        amount=amount,
        reason=reason,
        catalogue=catalogue,
        settings=settings,
    )
    keep_answer(
        session, user_id=user.id, operation=OPERATION, key=key, request=request, answer=answer
    )
    return answer


def _spend(
    session: Session,
    *,
    user: User,
    key: str,
    amount: int,
    reason: str | None,
    catalogue: Catalogue,
    settings: Settings,
) -> Answer:
    account = account_of_user(session, user_id=user.id)
    if account is None:
        return _short(balance=0, amount=amount)
    try:
        entry = ledger.consume(
            session, account_id=account.id, amount=amount, key=key, description=reason
        )
    except ledger.InsufficientCredits as exc:
        return _short(balance=exc.balance, amount=amount)
    balance = ledger.balance(session, account_id=account.id)
    _warn_when_low(
        session,
        account=account,
        balance=balance,
        spent=amount,
        catalogue=catalogue,
        settings=settings,
    )
    return Answer(
        200,
        {
            "id": entry.id,
            "amount": -entry.amount,
            "reason": entry.description,
            "credits_balance": balance,
            "created_at": entry.created_at.isoformat(),
        },
    )


def _short(*, balance: int, amount: int) -> Answer:
    detail = f"Not enough credits: the balance is {balance}, the request needs {amount}."
    return Answer(402, {"detail": detail})


def _warn_when_low(
    session: Session,
    *,
    account: Account,
    balance: int,
    spent: int,
    catalogue: Catalogue,
    settings: Settings,
) -> None:
    """Email once when a spend takes the balance below the plan's threshold: once per grant,
    so the next period's (or pack's) credits can warn again."""
    plan = catalogue.plan(account.plan)
    if plan is None or not (balance < plan.credits_low_threshold <= balance + spent):
        return
    grant = ledger.latest_grant(session, account_id=account.id)
    live = live_subscription(session, account_id=account.id)
    notify_customer(
        session,
        account,
        key=f"credits-low:{account.id}:{grant.id if grant else 0}",
        template="credits_low",
        context={
            "credits_balance": balance,
            "threshold": plan.credits_low_threshold,
            "plan_name": plan.name,
            "period_end": unix_time(live.current_period_end) if live else None,
            "upgrade_url": settings.app_billing_url,
        },
    )
