"""Upgrades waiting for their proration to be paid, and the paid invoices that settle them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from core.stripe_objects import timestamp
from db.models import Invoice, UpgradeTopUp

# The key of a downgrade's row: its ledger key, which an upgrade to the same price in the same
# period may also use (up, down and up again), behind this prefix.
DOWNGRADE_PREFIX = "downgrade:"


# Our own call's answer and the reconciliation know a change's time only as "now": a change
# of the same step recorded that way within this many seconds of an event's time is the same
# change (the event, which comes after, brings Stripe's own time).
SAME_CHANGE = timedelta(seconds=120)


def record_top_up(
    session: Session,
    *,
    account_id: int,
    base_key: str,
    subscription_id: str,
    price_id: str,
    old_price_id: str,
    period_start: datetime | None,
    period_end: datetime | None,
    changed_at: datetime,
    stripe_event_id: str | None,
    settled_at: datetime | None = None,
) -> UpgradeTopUp:
    """The change's row, keyed `<base_key>:<change time>`: each change of a period its own,
    so going down and up again to a price already met in the period is a change of its own.
    A delivery again of the same event finds its row by the key. An event (`stripe_event_id`)
    claims the row our own call or the reconciliation recorded for the same step just before
    it (no event of its own yet), and gives it Stripe's time; those record a step only when
    it is not the period's latest change already, nor within `SAME_CHANGE` of one."""
    key = f"{base_key}:{int(changed_at.timestamp())}"
    same_step = select(UpgradeTopUp).where(
        UpgradeTopUp.key.startswith(f"{base_key}:", autoescape=True),
        UpgradeTopUp.stripe_subscription_id == subscription_id,
        UpgradeTopUp.old_price_id == old_price_id,
    )
    found = session.scalar(select(UpgradeTopUp).where(UpgradeTopUp.key == key))
    if found is None and stripe_event_id is not None:
        found = session.scalar(
            same_step.where(
                UpgradeTopUp.stripe_event_id.is_(None),
                UpgradeTopUp.changed_at >= changed_at - SAME_CHANGE,
            )
            .order_by(UpgradeTopUp.changed_at, UpgradeTopUp.id)
            .limit(1)
            .with_for_update()
        )
        if found is not None:
            found.stripe_event_id = stripe_event_id
            found.changed_at = changed_at
    elif found is None:
        # Known only "now": the same step as the period's latest change recorded (nothing
        # changed since), or one recorded within `SAME_CHANGE` of now.
        latest = session.scalar(
            select(UpgradeTopUp)
            .where(
                UpgradeTopUp.stripe_subscription_id == subscription_id,
                UpgradeTopUp.period_start == period_start,
            )
            .order_by(UpgradeTopUp.changed_at.desc().nulls_last(), UpgradeTopUp.id.desc())
            .limit(1)
        )
        found = session.scalar(
            same_step.where(
                UpgradeTopUp.changed_at.between(changed_at - SAME_CHANGE, changed_at + SAME_CHANGE)
                | (UpgradeTopUp.id == (latest.id if latest else None))
            ).limit(1)
        )
    if found is not None:
        return found
    session.execute(
        insert(UpgradeTopUp)
        .values(
            key=key,
            account_id=account_id,
            stripe_subscription_id=subscription_id,
            price_id=price_id,
            old_price_id=old_price_id,
            period_start=period_start,
            period_end=period_end,
            changed_at=changed_at,
            stripe_event_id=stripe_event_id,
            settled_at=settled_at,
        )
        .on_conflict_do_nothing(index_elements=[UpgradeTopUp.key])
    )
    row = session.scalar(select(UpgradeTopUp).where(UpgradeTopUp.key == key))
    assert row is not None
    return row


def unpaid_top_ups(session: Session, *, subscription_id: str, price_id: str) -> list[UpgradeTopUp]:
    """The subscription's upgrades to that price still waiting for their payment."""
    return list(
        session.scalars(
            select(UpgradeTopUp)
            .where(
                UpgradeTopUp.stripe_subscription_id == subscription_id,
                UpgradeTopUp.price_id == price_id,
                UpgradeTopUp.settled_at.is_(None),
            )
            .order_by(UpgradeTopUp.id)
            .with_for_update()
        )
    )


def changes_of_period(
    session: Session, *, subscription_id: str, period_start: datetime
) -> list[UpgradeTopUp]:
    """The subscription's plan changes within the period, in the order they happened."""
    return list(
        session.scalars(
            select(UpgradeTopUp)
            .where(
                UpgradeTopUp.stripe_subscription_id == subscription_id,
                UpgradeTopUp.period_start == period_start,
            )
            .order_by(UpgradeTopUp.changed_at.asc().nulls_first(), UpgradeTopUp.id)
        )
    )


def top_ups_by_key(session: Session, *, keys: list[str]) -> list[UpgradeTopUp]:
    if not keys:
        return []
    return list(
        session.scalars(
            select(UpgradeTopUp).where(UpgradeTopUp.key.in_(keys)).order_by(UpgradeTopUp.id)
        )
    )


def settled_by(session: Session, *, invoice_id: str) -> list[UpgradeTopUp]:
    return list(session.scalars(_SETTLED_BY, {"invoice_id": invoice_id}))


# Built once: every paid invoice asks (docs/decisions/0007).
_SETTLED_BY = (
    select(UpgradeTopUp)
    .where(UpgradeTopUp.stripe_invoice_id == bindparam("invoice_id"))
    .order_by(UpgradeTopUp.id)
)


def mark_settled(top_up: UpgradeTopUp, *, invoice: Invoice, credits: int, at: datetime) -> None:
    top_up.stripe_invoice_id = invoice.stripe_invoice_id
    top_up.credits = credits
    top_up.settled_at = at


def pays_for(proration: dict[str, Any], top_up: UpgradeTopUp) -> bool:
    """Whether an invoice's proration line charges for the upgrade: the same subscription and
    new price, a positive amount (the credit for the unused time of a price left behind is
    negative: a downgrade's invoice pays for no upgrade), and time within the upgrade's
    period (a later period's change to the same price is another upgrade)."""
    if (
        proration.get("subscription") != top_up.stripe_subscription_id
        or proration.get("price") != top_up.price_id
        or int(proration.get("amount") or 0) <= 0
    ):
        return False
    start, end = timestamp(proration.get("start")), timestamp(proration.get("end"))
    if start is None or end is None or top_up.period_start is None or top_up.period_end is None:
        return True
    return start < top_up.period_end and end > top_up.period_start
