"""Stripe events from the fixtures in `tests/fixtures/stripe/<api version>/`, with fresh ids,
and a way to apply one here: stored, then claimed and applied by the same transaction and
lock code as the worker's task, with the tests' `BillingContext`, and no Celery."""

from __future__ import annotations

import copy
import dataclasses
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import stripe
from sqlalchemy import select

from billing.context import BillingContext
from cli.sample_events import (
    Story,
    SubscriptionIds,
    proration_line,
    set_line_price,
)
from cli.sample_events import subscription as sample_subscription
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
from db.session import new_session, transaction
from tasks.context import worker_context
from tasks.events import processing
from tests.support.events import store_directly, stored

FIXTURES = Path(__file__).parent.parent / "fixtures" / "stripe"
API_VERSIONS = (
    "2017-08-15",
    "2022-11-15",
    "2025-09-30.clover",
    "2026-03-25.dahlia",
    "2026-10-28.endive",
)
NEWEST = API_VERSIONS[-1]
# Since 2025-03-31.basil an invoice names its payment only in `payments`, which webhooks leave
# out: these versions' invoices carry no payment id.
INVOICE_PAYMENT_LEFT_OUT = frozenset(v for v in API_VERSIONS if v >= "2025-03-31")
PRICES = {"starter": "price_starter_test", "pro": "price_pro_test", "team": "price_team_test"}
CREDITS = {"free": 0, "starter": 1000, "pro": 5000, "team": 20000}
# The fixtures' billing period, and a moment within it when the tests' plan changes happen.
PERIOD_START, PERIOD_END = 1767225600, 1769904000
CHANGED_AT = 1768000000
NEXT_PERIOD_END = 1772323200


def prorated(credits: int, *, changed_at: int = CHANGED_AT) -> int:
    """A plan change's credits for the time left in the fixtures' period at `changed_at`,
    rounded down (the proration rule of `billing.upgrades`)."""
    return credits * (PERIOD_END - changed_at) // (PERIOD_END - PERIOD_START)


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
    credit_note: str = field(default_factory=lambda: _unique("cn"))
    warning: str = field(default_factory=lambda: _unique("issfr"))
    card_fingerprint: str = field(default_factory=lambda: uuid.uuid4().hex[:16])

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


def plan_changed(
    ids: Ids,
    *,
    old_price: str,
    new_price: str,
    api_version: str = NEWEST,
    created: int | None = None,
) -> dict[str, Any]:
    """`customer.subscription.updated` of a change from `old_price` to `new_price`."""
    changed = replace(ids, previous_price=old_price, price=new_price)
    return stripe_event(
        "customer.subscription.updated", changed, api_version=api_version, created=created
    )


def proration_invoice(
    ids: Ids,
    *,
    old_price: str,
    new_price: str,
    api_version: str = NEWEST,
    event_type: str = "invoice.paid",
    paid: bool = True,
    charged: int = 2000,
    credited: int = -1000,
    amount_due: int | None = None,
    changed_at: int = CHANGED_AT,
    renewal: bool = False,
    created: int | None = None,
) -> dict[str, Any]:
    """An invoice event of a plan change's proration, in that API version's shape: a line
    crediting the unused time on `old_price` and one charging the time left on `new_price`,
    from `changed_at` to the period's end. Its own invoice (`always_invoice`, billing reason
    `subscription_update`), or with `renewal` the next period's renewal carrying them
    (`create_prorations`) with its own line for `new_price`. The oldest shape has no billing
    reason. `ids.invoice`, `.charge` and `.payment_intent` name it and its payment; an
    `amount_due` of 0 (a customer balance paid it) has no payment."""
    event = stripe_event("invoice.paid", ids, api_version=api_version, created=created)
    event["type"] = event_type
    invoice = event["data"]["object"]
    template = invoice["lines"]["data"][0]
    period = {"start": changed_at, "end": PERIOD_END}
    lines = [
        _proration_line(template, price=old_price, amount=credited, period=period),
        _proration_line(template, price=new_price, amount=charged, period=period),
    ]
    if renewal:
        line = copy.deepcopy(template)
        line["period"] = {"start": PERIOD_END, "end": NEXT_PERIOD_END}
        set_line_price(line, new_price)
        lines.append(line)
    total = sum(int(line["amount"]) for line in lines)
    due = max(total, 0) if amount_due is None else amount_due
    invoice["lines"]["data"] = lines
    invoice["lines"]["total_count"] = len(lines)
    if api_version != API_VERSIONS[0]:
        invoice["billing_reason"] = "subscription_cycle" if renewal else "subscription_update"
    invoice.update(
        subtotal=total,
        total=total,
        amount_due=due,
        amount_paid=due if paid else 0,
        amount_remaining=0 if paid else due,
        starting_balance=due - total,
        status="paid" if paid else "open",
    )
    if "paid" in invoice:
        invoice["paid"] = paid
    if due == 0:
        for key in ("charge", "payment_intent"):
            if key in invoice:
                invoice[key] = None
    return event


def _proration_line(
    template: dict[str, Any], *, price: str, amount: int, period: dict[str, int]
) -> dict[str, Any]:
    description = f"{'Remaining' if amount > 0 else 'Unused'} time on {price}"
    return proration_line(
        template, price_id=price, amount=amount, description=description, period=period
    )


def stripe_subscription(
    subscription_id: str, customer_id: str, *, now: int, price: str = PRICES["pro"]
) -> dict[str, Any]:
    """A subscription as Stripe lists it (the newest shape), begun at `now` on `price`."""
    story = Story.fixed(customer_id, now=now, starter_price=PRICES["starter"], pro_price=price)
    ids = SubscriptionIds(
        subscription=subscription_id,
        item=_unique("si"),
        product=_unique("prod"),
        latest_invoice=_unique("in"),
    )
    return sample_subscription(story, ids, story.pro)


# The Stripe client the events applied here see: None (Stripe off, as in the test settings)
# unless a test points it at a fake (`using_stripe`).
_stripe: list[stripe.StripeClient | None] = [None]


def billing_context() -> BillingContext:
    """The tests' context: the run's settings and catalogue, emails published to `emails.send`
    as the worker's are, and the Stripe client of `using_stripe` (None by default)."""
    return dataclasses.replace(worker_context(), stripe=_stripe[0])


@contextmanager
def using_stripe(client: stripe.StripeClient | None) -> Iterator[BillingContext]:
    """Within it, the events applied here (and `billing_context()`) use this Stripe client."""
    previous, _stripe[0] = _stripe[0], client
    try:
        yield billing_context()
    finally:
        _stripe[0] = previous


def with_settings(**overrides: Any) -> BillingContext:
    """The tests' context with some settings changed (RENEWAL_NOTICE_MONTHLY, say)."""
    ctx = billing_context()
    return dataclasses.replace(ctx, settings=ctx.settings.model_copy(update=overrides))


def redelivered(event: dict[str, Any], suffix: str = "_again") -> dict[str, Any]:
    """The same event under another id: what a duplicate Stripe sends looks like to the
    handler once the event id's unique key has been passed (a replay, a second endpoint)."""
    return {**event, "id": event["id"] + suffix}


def process(event: dict[str, Any], ctx: BillingContext | None = None) -> str:
    """Store the event and apply it here, through the task's claim and transaction but without
    Celery or retries (a failure marks the row failed at once); the row's final status."""
    row_id = store_directly(event)
    with transaction() as session:
        claim = processing.claim(session, row_id=row_id)
    assert claim is not None, f"event row {row_id} could not be claimed"
    try:
        processing.apply(claim, ctx=ctx or billing_context())
    except Exception as exc:
        processing.mark_failed(row_id=row_id, error=exc)
    row = stored(event["id"])
    assert row is not None
    return row.status


def process_ok(event: dict[str, Any], ctx: BillingContext | None = None) -> None:
    status = process(event, ctx)
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
