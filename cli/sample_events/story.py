"""What one trigger's objects share: the customer, the clock, the prices, and the ids of the
subscription or the payment its events are about."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from cli.sample_events.ids import customer_id, short_id, stripe_id
from cli.sample_events.prices import PlanPrice, known_price, plan_price
from core.plans import Catalogue, CreditPack

StripeDict = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Story:
    """What one trigger's objects share: the customer, the clock and the catalogue's prices."""

    customer: str
    new_customer: bool
    now: int
    starter: PlanPrice
    pro: PlanPrice
    pack: CreditPack | None

    @classmethod
    def begin(cls, catalogue: Catalogue, *, customer: str | None = None) -> Story:
        return cls(
            customer=customer or customer_id(),
            new_customer=customer is None,
            now=int(time.time()),
            starter=plan_price(catalogue, "starter"),
            pro=plan_price(catalogue, "pro"),
            pack=next(iter(catalogue.packs.values()), None),
        )

    @classmethod
    def fixed(cls, customer: str, *, now: int, starter_price: str, pro_price: str) -> Story:
        """A known customer's story at a given time, with given price ids and no credit pack:
        how the tests and the benchmarks make Stripe objects of their own."""
        return cls(
            customer=customer,
            new_customer=False,
            now=now,
            starter=known_price("starter", starter_price),
            pro=known_price("pro", pro_price),
            pack=None,
        )

    @property
    def email(self) -> str:
        return email_of(self.customer)

    @property
    def updated_email(self) -> str:
        return updated_email_of(self.customer)

    @property
    def user_id(self) -> str:
        return f"user_{_slug(self.customer)}"

    @property
    def invoice_prefix(self) -> str:
        return hashlib.sha256(self.customer.encode()).hexdigest()[:8].upper()


def _slug(customer: str) -> str:
    return customer.removeprefix("cus_").lower()


def email_of(customer: str) -> str:
    """The customer's address in every object of its stories (example.com receives no mail)."""
    return f"jenny.rosen+{_slug(customer)}@example.com"


def updated_email_of(customer: str) -> str:
    """The address `customer.updated` changes it to."""
    return f"j.rosen+{_slug(customer)}@example.com"


@dataclass(frozen=True, slots=True)
class SubscriptionIds:
    subscription: str
    item: str
    product: str
    latest_invoice: str

    @classmethod
    def new(cls) -> SubscriptionIds:
        return cls(
            subscription=stripe_id("sub"),
            item=short_id("si"),
            product=short_id("prod"),
            latest_invoice=stripe_id("in"),
        )


@dataclass(frozen=True, slots=True)
class Payment:
    """A credit pack bought in Checkout: what a refund or a dispute refers to."""

    checkout_session: str
    payment_intent: str
    charge: str
    amount: int
    currency: str
