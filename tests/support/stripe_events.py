"""Stripe events from the fixtures in `tests/fixtures/stripe/<api version>/`, with fresh ids,
and a way to run one through its task in this process."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import select

from db.models import (
    Account,
    CreditEntry,
    Dispute,
    DisputeFundsMovement,
    DisputeStatusChange,
    EmailLog,
    Subscription,
    SubscriptionChange,
)
from db.session import new_session
from tasks.events.tasks import EVENT_TASKS
from tests.support.events import store_directly, stored

FIXTURES = Path(__file__).parent.parent / "fixtures" / "stripe"
API_VERSIONS = ("2017-08-15", "2022-11-15", "2025-09-30.clover")
NEWEST = API_VERSIONS[-1]
PRICES = {"starter": "price_starter_test", "pro": "price_pro_test", "team": "price_team_test"}
CREDITS = {"free": 0, "starter": 1000, "pro": 5000, "team": 20000}


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


@dataclass(frozen=True)
class Ids:
    """The ids one test's objects share; every test makes its own."""

    customer: str = field(default_factory=lambda: _unique("cus"))
    subscription: str = field(default_factory=lambda: _unique("sub"))
    subscription_item: str = field(default_factory=lambda: _unique("si"))
    invoice: str = field(default_factory=lambda: _unique("in"))
    invoice_line: str = field(default_factory=lambda: _unique("il"))
    charge: str = field(default_factory=lambda: _unique("ch"))
    payment_intent: str = field(default_factory=lambda: _unique("pi"))
    price: str = PRICES["pro"]
    previous_price: str = PRICES["starter"]
    product: str = field(default_factory=lambda: _unique("prod"))
    checkout_session: str = field(default_factory=lambda: _unique("cs"))
    user_id: str = field(default_factory=lambda: _unique("user"))
    email: str = field(default_factory=lambda: f"{_unique('jane')}@example.com")
    refund: str = field(default_factory=lambda: _unique("re"))
    dispute: str = field(default_factory=lambda: _unique("du"))
    pack: str = "small"
    invoice_payment: str = field(default_factory=lambda: _unique("inpay"))

    def next_invoice(self) -> Ids:
        """The same subscription's next invoice, paid by a new payment."""
        return replace(
            self,
            invoice=_unique("in"),
            invoice_line=_unique("il"),
            charge=_unique("ch"),
            payment_intent=_unique("pi"),
            invoice_payment=_unique("inpay"),
        )


def has_fixture(event_type: str, api_version: str = NEWEST) -> bool:
    return (FIXTURES / api_version / f"{event_type}.json").exists()


def stripe_event(
    event_type: str,
    ids: Ids,
    *,
    api_version: str = NEWEST,
    variant: str = "",
    created: int | None = None,
) -> dict[str, Any]:
    """The fixture of that type and API version, every `{{token}}` replaced by `ids`."""
    name = f"{event_type}.{variant}.json" if variant else f"{event_type}.json"
    text = (FIXTURES / api_version / name).read_text()
    for token, value in {**ids.__dict__, "event": _unique("evt")}.items():
        text = text.replace("{{" + token + "}}", value)
    event = json.loads(text)
    event["created"] = created if created is not None else int(time.time())
    return event


def process(event: dict[str, Any]) -> str:
    """Store the event and run its task here, as a worker would; the row's final status."""
    row_id = store_directly(event)
    EVENT_TASKS[event["type"]].apply(args=[row_id])
    row = stored(event["id"])
    assert row is not None
    return row.status


def process_ok(event: dict[str, Any]) -> None:
    status = process(event)
    row = stored(event["id"])
    assert status == "processed", (status, row.last_error if row else None)


def known_customer(ids: Ids) -> Ids:
    """Deliver the customer's `customer.created` first, so the account has its email."""
    process_ok(stripe_event("customer.created", ids))
    return ids


# --- Reading what the handlers did ----------------------------------------------------------


def account(customer_id: str) -> Account | None:
    with new_session() as session:
        return session.scalar(select(Account).where(Account.stripe_customer_id == customer_id))


def ledger(customer_id: str) -> list[tuple[str, str, int]]:
    """(kind, source id, amount) of the customer's entries, oldest first."""
    with new_session() as session:
        rows = session.execute(
            select(CreditEntry.kind, CreditEntry.source_id, CreditEntry.amount)
            .join(Account, Account.id == CreditEntry.account_id)
            .where(Account.stripe_customer_id == customer_id)
            .order_by(CreditEntry.id)
        ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def balance(customer_id: str) -> int:
    return sum(amount for _, _, amount in ledger(customer_id))


def subscription(subscription_id: str) -> Subscription | None:
    with new_session() as session:
        return session.scalar(
            select(Subscription).where(Subscription.stripe_subscription_id == subscription_id)
        )


def history(subscription_id: str) -> list[SubscriptionChange]:
    with new_session() as session:
        return list(
            session.scalars(
                select(SubscriptionChange)
                .join(Subscription, Subscription.id == SubscriptionChange.subscription_id)
                .where(Subscription.stripe_subscription_id == subscription_id)
                .order_by(SubscriptionChange.id)
            )
        )


def emails(key_prefix: str) -> list[EmailLog]:
    with new_session() as session:
        return list(
            session.scalars(
                select(EmailLog)
                .where(EmailLog.idempotency_key.startswith(key_prefix, autoescape=True))
                .order_by(EmailLog.id)
            )
        )


def dispute_event(
    event_type: str,
    ids: Ids,
    *,
    api_version: str = NEWEST,
    created: int | None = None,
    status: str | None = None,
    due_by: int | None = None,
) -> dict[str, Any]:
    """A dispute event; `status` and `due_by` override the fixture's."""
    event = stripe_event(event_type, ids, api_version=api_version, created=created)
    dispute = event["data"]["object"]
    if status is not None:
        dispute["status"] = status
        if status.startswith("warning_"):
            card = (dispute.get("payment_method_details") or {}).get("card")
            if card is not None:
                card["case_type"] = "inquiry"
    if due_by is not None:
        dispute["evidence_details"]["due_by"] = due_by
    return event


def dispute_row(dispute_id: str) -> Dispute | None:
    with new_session() as session:
        return session.scalar(select(Dispute).where(Dispute.stripe_dispute_id == dispute_id))


def dispute_statuses(dispute_id: str) -> list[str]:
    with new_session() as session:
        return list(
            session.scalars(
                select(DisputeStatusChange.to_status)
                .join(Dispute, Dispute.id == DisputeStatusChange.dispute_id)
                .where(Dispute.stripe_dispute_id == dispute_id)
                .order_by(DisputeStatusChange.id)
            )
        )


def funds_movements(dispute_id: str) -> list[tuple[str, int, int]]:
    """(kind, amount, fee) of the dispute's recorded money movements."""
    with new_session() as session:
        rows = session.execute(
            select(DisputeFundsMovement.kind, DisputeFundsMovement.amount, DisputeFundsMovement.fee)
            .join(Dispute, Dispute.id == DisputeFundsMovement.dispute_id)
            .where(Dispute.stripe_dispute_id == dispute_id)
            .order_by(DisputeFundsMovement.id)
        ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]
