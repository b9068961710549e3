"""Realistic Stripe events for `billing trigger`, shaped like API version 2025-09-30.clover.

Like `stripe trigger`, one trigger is a short story, not a lone event: the events Stripe sends
before the named one come first, because the handlers work from the event alone while no
Stripe key is set, and would otherwise have nothing to act on:

- a new customer's `customer.created` (its email and `metadata.user_id`), unless `--customer`
  names one the platform has met;
- the subscription an upgrade or a cancellation changes, and, for a new customer, the one its
  invoices belong to, so the account shows a plan; an upgrade's paid proration invoice, since
  only a paid upgrade grants credits;
- the credit-pack purchase (a Checkout in payment mode) that a refund or a dispute is about,
  since only a payment the ledger knows can give credits back or have them held.

The named event is always the last one. Every id is new on each call; only the customer can be
given, and its email and user id follow from it, so several triggers tell one customer's story.
Each event's `created` is a second after the previous one, as Stripe's would be, so the
ordering guards see them in story order whatever order a worker handles them in.
"""

from __future__ import annotations

import copy
import hashlib
import secrets
import string
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from core.plans import Catalogue, CreditPack

API_VERSION = "2025-09-30.clover"
DAY = 24 * 60 * 60
# Stripe gives the business about three weeks to answer a chargeback; the evidence is due at
# the end of a day.
EVIDENCE_DAYS = 21
DISPUTE_FEE = 1500
# Stripe holds these prices' amounts, not the catalogue; they only show in emails.
PLAN_AMOUNTS = {"starter": 1900, "pro": 2900, "team": 9900}
PAYMENT_METHOD = "pm_1TriggerCard0000000001"

StripeDict = dict[str, Any]
_BASE62 = string.digits + string.ascii_letters


class SampleError(Exception):
    """The event cannot be built from this configuration; the message is one sentence."""


def stripe_id(prefix: str, length: int = 24) -> str:
    """A new id shaped like Stripe's: the prefix, then base62 (a leading `1` for most objects,
    as in `evt_1Q...`)."""
    return f"{prefix}_1{_token(length - 1)}"


def customer_id() -> str:
    return _short_id("cus")


def checkout_session_id() -> str:
    return f"cs_test_a1{_token(56)}"


def _token(length: int) -> str:
    return "".join(secrets.choice(_BASE62) for _ in range(length))


def _short_id(prefix: str) -> str:
    return f"{prefix}_{_token(14)}"


def one_month_later(moment: int) -> int:
    """The same day and time next month (the last day of a shorter month), as Stripe bills."""
    day = datetime.fromtimestamp(moment, UTC)
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    for candidate in (day.day, 30, 29, 28):
        try:
            return int(day.replace(year=year, month=month, day=candidate).timestamp())
        except ValueError:
            continue
    raise AssertionError("every month has a 28th")


@dataclass(frozen=True, slots=True)
class PlanPrice:
    plan: str
    name: str
    price_id: str
    amount: int
    configured: bool  # False: a placeholder, which the platform's catalogue does not know


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


def plan_price(catalogue: Catalogue, plan_id: str) -> PlanPrice:
    """The plan's configured Stripe price, or a placeholder the platform will not recognise."""
    plan = catalogue.plan(plan_id)
    name = plan.name if plan else plan_id.title()
    price_id = plan.price_id if plan else None
    return PlanPrice(
        plan=plan_id,
        name=name,
        price_id=price_id or placeholder_price(plan_id),
        amount=PLAN_AMOUNTS.get(plan_id, 1900),
        configured=price_id is not None,
    )


def known_price(plan_id: str, price_id: str) -> PlanPrice:
    """A plan's price whose id the caller knows."""
    amount = PLAN_AMOUNTS.get(plan_id, 1900)
    return PlanPrice(plan_id, plan_id.title(), price_id, amount, configured=True)


def placeholder_price(plan_id: str) -> str:
    """The made-up price id of a plan whose price is not configured; `billing up` in
    development configures the platform with these, so triggered events grant credits."""
    return f"price_{plan_id}_local"


def _address() -> StripeDict:
    """The billing address of the sample customer (Stripe's test fixtures' own)."""
    return {
        "city": None,
        "country": "US",
        "line1": None,
        "line2": None,
        "postal_code": "94107",
        "state": None,
    }


@dataclass(frozen=True, slots=True)
class Step:
    """One event of a story, before its id and time are given."""

    type: str
    object: StripeDict
    previous_attributes: StripeDict | None = None
    # True when an API call made it (a dashboard click, our own request): it has a request id.
    by_request: bool = False


@dataclass(frozen=True, slots=True)
class Payment:
    """A credit pack bought in Checkout: what a refund or a dispute refers to."""

    checkout_session: str
    payment_intent: str
    charge: str
    amount: int
    currency: str


# --- The objects ----------------------------------------------------------------------------


def customer(story: Story, *, email: str | None = None) -> StripeDict:
    return {
        "id": story.customer,
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": story.now - 60,
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": email or story.email,
        "invoice_prefix": story.invoice_prefix,
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": {"user_id": story.user_id},
        "name": "Jenny Rosen",
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


def price(story: Story, plan: PlanPrice, product: str) -> StripeDict:
    return {
        "id": plan.price_id,
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "created": story.now - 30 * DAY,
        "currency": "usd",
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": f"{plan.plan}_monthly",
        "metadata": {},
        "nickname": plan.name,
        "product": product,
        "recurring": {
            "interval": "month",
            "interval_count": 1,
            "meter": None,
            "trial_period_days": None,
            "usage_type": "licensed",
        },
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring",
        "unit_amount": plan.amount,
        "unit_amount_decimal": str(plan.amount),
    }


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
            item=_short_id("si"),
            product=_short_id("prod"),
            latest_invoice=stripe_id("in"),
        )


def subscription_item(story: Story, ids: SubscriptionIds, plan: PlanPrice) -> StripeDict:
    # Since 2025-03-31.basil the period lives on each item, not on the subscription.
    return {
        "id": ids.item,
        "object": "subscription_item",
        "created": story.now - 5,
        "current_period_end": one_month_later(story.now),
        "current_period_start": story.now,
        "discounts": [],
        "metadata": {},
        "price": price(story, plan, ids.product),
        "quantity": 1,
        "subscription": ids.subscription,
        "tax_rates": [],
    }


def subscription(
    story: Story,
    ids: SubscriptionIds,
    plan: PlanPrice,
    *,
    status: str = "active",
    cancel_at_period_end: bool = False,
) -> StripeDict:
    canceled = status == "canceled"
    return {
        "id": ids.subscription,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": story.now,
        "billing_cycle_anchor_config": None,
        "billing_mode": {"type": "classic"},
        "billing_thresholds": None,
        "cancel_at": one_month_later(story.now) if cancel_at_period_end else None,
        "cancel_at_period_end": cancel_at_period_end,
        "canceled_at": story.now if canceled else None,
        "cancellation_details": {
            "comment": None,
            "feedback": None,
            "reason": "cancellation_requested" if canceled else None,
        },
        "collection_method": "charge_automatically",
        "created": story.now - 5,
        "currency": "usd",
        "customer": story.customer,
        "days_until_due": None,
        "default_payment_method": PAYMENT_METHOD,
        "default_source": None,
        "description": None,
        "discounts": [],
        "ended_at": story.now if canceled else None,
        "items": {
            "object": "list",
            "data": [subscription_item(story, ids, plan)],
            "has_more": False,
            "total_count": 1,
            "url": f"/v1/subscription_items?subscription={ids.subscription}",
        },
        "latest_invoice": ids.latest_invoice,
        "livemode": False,
        "metadata": {"user_id": story.user_id},
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": story.now - 5,
        "status": status,
        "test_clock": None,
        "transfer_data": None,
        "trial_end": None,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": None,
    }


def invoice(
    story: Story,
    ids: SubscriptionIds,
    plan: PlanPrice,
    *,
    invoice_id: str,
    billing_reason: str,
    paid: bool = True,
) -> StripeDict:
    """A subscription invoice. The newest shape names neither its payment intent nor its
    charge (`payments` must be expanded, which webhooks never are)."""
    start, end = story.now, one_month_later(story.now)
    first = billing_reason == "subscription_create"
    token = _token(40)
    number = f"{story.invoice_prefix}-{secrets.randbelow(9000) + 1000}"
    return {
        "id": invoice_id,
        "object": "invoice",
        "account_country": "US",
        "account_name": "Example SaaS",
        "amount_due": plan.amount,
        "amount_overpaid": 0,
        "amount_paid": plan.amount if paid else 0,
        "amount_remaining": 0 if paid else plan.amount,
        "attempt_count": 1,
        "attempted": True,
        "auto_advance": not paid,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_reason": billing_reason,
        "collection_method": "charge_automatically",
        "created": story.now - 4,
        "currency": "usd",
        "customer": story.customer,
        "customer_address": None,
        "customer_email": story.email,
        "customer_name": "Jenny Rosen",
        "customer_phone": None,
        "default_payment_method": None,
        "description": None,
        "discounts": [],
        "due_date": None,
        "effective_at": story.now - 4,
        "ending_balance": 0,
        "hosted_invoice_url": f"https://invoice.stripe.com/i/acct_1TriggerAcct00001/test_{token}",
        "invoice_pdf": f"https://pay.stripe.com/invoice/acct_1TriggerAcct00001/test_{token}/pdf",
        "lines": {
            "object": "list",
            "data": [
                {
                    "id": stripe_id("il"),
                    "object": "line_item",
                    "amount": plan.amount,
                    "currency": "usd",
                    # Stripe writes a multiplication sign (U+00D7) between quantity and name.
                    "description": f"1 \u00d7 {plan.name} (at ${plan.amount / 100:.2f} / month)",
                    "discount_amounts": [],
                    "discountable": True,
                    "discounts": [],
                    "invoice": invoice_id,
                    "livemode": False,
                    "metadata": {},
                    "parent": {
                        "invoice_item_details": None,
                        "subscription_item_details": {
                            "invoice_item": None,
                            "proration": False,
                            "proration_details": {"credited_items": None},
                            "subscription": ids.subscription,
                            "subscription_item": ids.item,
                        },
                        "type": "subscription_item_details",
                    },
                    "period": {"end": end, "start": start},
                    "pretax_credit_amounts": [],
                    "pricing": {
                        "price_details": {"price": plan.price_id, "product": ids.product},
                        "type": "price_details",
                        "unit_amount_decimal": str(plan.amount),
                    },
                    "quantity": 1,
                    "subtotal": plan.amount,
                    "taxes": [],
                }
            ],
            "has_more": False,
            "total_count": 1,
            "url": f"/v1/invoices/{invoice_id}/lines",
        },
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": None if paid else story.now + 3 * DAY,
        "number": number,
        "parent": {
            "quote_details": None,
            "subscription_details": {
                "metadata": {"user_id": story.user_id},
                "subscription": ids.subscription,
            },
            "type": "subscription_details",
        },
        # The invoice's own period is the one before (none for a first invoice); the line
        # holds the service period.
        "period_end": story.now - 4 if first else story.now,
        "period_start": story.now - 4 if first else story.now - 30 * DAY,
        "status": "paid" if paid else "open",
        "status_transitions": {
            "finalized_at": story.now - 4,
            "marked_uncollectible_at": None,
            "paid_at": story.now - 2 if paid else None,
            "voided_at": None,
        },
        "subtotal": plan.amount,
        "total": plan.amount,
        "total_taxes": [],
        "webhooks_delivered_at": story.now - 4,
    }


def proration_invoice(
    story: Story, ids: SubscriptionIds, old: PlanPrice, new: PlanPrice
) -> StripeDict:
    """The invoice of a change's proration, charged at once (`always_invoice`): the time left
    on the new plan less the unused time on the old one, here a whole period's of each."""
    paid = invoice(
        story, ids, new, invoice_id=ids.latest_invoice, billing_reason="subscription_update"
    )
    template = paid["lines"]["data"][0]
    lines = [
        proration_line(
            template,
            price_id=old.price_id,
            amount=-old.amount,
            description=f"Unused time on {old.name}",
            unit_amount=old.amount,
        ),
        proration_line(
            template,
            price_id=new.price_id,
            amount=new.amount,
            description=f"Remaining time on {new.name}",
            unit_amount=new.amount,
        ),
    ]
    net = max(new.amount - old.amount, 0)
    paid["lines"].update(data=lines, total_count=len(lines))
    paid.update(amount_due=net, amount_paid=net, subtotal=net, total=net)
    return paid


def proration_line(
    template: StripeDict,
    *,
    price_id: str,
    amount: int,
    description: str,
    period: StripeDict | None = None,
    unit_amount: int | None = None,
) -> StripeDict:
    """A proration line made from an invoice's subscription line, in the template's shape of
    whichever API version: crediting (a negative `amount`) or charging time on `price_id`."""
    line = copy.deepcopy(template)
    line.update(id=stripe_id("il"), amount=amount, description=description)
    if period is not None:
        line["period"] = dict(period)
    set_line_price(line, price_id, unit_amount=unit_amount)
    if "proration" in line:  # before 2025-03-31.basil: an invoice item flagged as proration
        line["proration"] = True
        line["type"] = "invoiceitem"
    details = (line.get("parent") or {}).get("subscription_item_details")
    if details is not None:
        details["proration"] = True
    for key in ("subtotal", "amount_excluding_tax"):
        if key in line:
            line[key] = amount
    return line


def set_line_price(line: StripeDict, price_id: str, *, unit_amount: int | None = None) -> None:
    """Point an invoice line at another price, wherever its API version names it."""
    for key in ("plan", "price"):
        if isinstance(line.get(key), dict):
            line[key]["id"] = price_id
    pricing = line.get("pricing")
    if isinstance(pricing, dict):
        pricing["price_details"]["price"] = price_id
        if unit_amount is not None:
            pricing["unit_amount_decimal"] = str(unit_amount)


def _checkout_session(
    story: Story,
    *,
    session_id: str,
    mode: str,
    payment_status: str,
    amount: int,
    currency: str,
    metadata: StripeDict,
    payment_method_types: list[str],
    subscription_id: str | None = None,
    invoice_id: str | None = None,
    payment_intent: str | None = None,
) -> StripeDict:
    return {
        "id": session_id,
        "object": "checkout.session",
        "adaptive_pricing": {"enabled": False},
        "after_expiration": None,
        "allow_promotion_codes": None,
        "amount_subtotal": amount,
        "amount_total": amount,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "billing_address_collection": None,
        "cancel_url": "http://localhost:3000/billing?checkout=canceled",
        "client_reference_id": story.user_id,
        "client_secret": None,
        "consent": None,
        "consent_collection": None,
        "created": story.now - 120,
        "currency": currency,
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer": story.customer,
        "customer_creation": "if_required" if mode == "payment" else None,
        "customer_details": {
            "address": _address(),
            "email": story.email,
            "name": "Jenny Rosen",
            "phone": None,
            "tax_exempt": "none",
            "tax_ids": [],
        },
        "customer_email": None,
        "discounts": [],
        "expires_at": story.now + DAY - 120,
        "invoice": invoice_id,
        "invoice_creation": None,
        "livemode": False,
        "locale": None,
        "metadata": metadata,
        "mode": mode,
        "payment_intent": payment_intent,
        "payment_link": None,
        "payment_method_collection": "always",
        "payment_method_options": {},
        "payment_method_types": payment_method_types,
        "payment_status": payment_status,
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "saved_payment_method_options": None,
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": "complete",
        "submit_type": "pay" if mode == "payment" else None,
        "subscription": subscription_id,
        "success_url": "http://localhost:3000/billing?checkout=success",
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted",
        "url": None,
    }


def subscription_checkout(story: Story, ids: SubscriptionIds, plan: PlanPrice) -> StripeDict:
    return _checkout_session(
        story,
        session_id=checkout_session_id(),
        mode="subscription",
        payment_status="paid",
        amount=plan.amount,
        currency="usd",
        metadata={"user_id": story.user_id, "plan": plan.plan},
        payment_method_types=["card"],
        subscription_id=ids.subscription,
        invoice_id=ids.latest_invoice,
    )


def pack_checkout(
    story: Story, pack: CreditPack, payment: Payment, *, paid: bool = True, delayed: bool = False
) -> StripeDict:
    """A credit pack bought in Checkout's payment mode (`metadata.pack` names it); `delayed`
    pays by bank debit, which completes the session unpaid and settles days later."""
    return _checkout_session(
        story,
        session_id=payment.checkout_session,
        mode="payment",
        payment_status="paid" if paid else "unpaid",
        amount=pack.amount,
        currency=pack.currency,
        metadata={"pack": pack.id, "user_id": story.user_id},
        payment_method_types=["us_bank_account"] if delayed else ["card"],
        payment_intent=payment.payment_intent,
    )


def charge(story: Story, payment: Payment, *, refunded: int = 0) -> StripeDict:
    """The pack's card charge; since 2022-11-15 its refunds are not listed on it."""
    return {
        "id": payment.charge,
        "object": "charge",
        "amount": payment.amount,
        "amount_captured": payment.amount,
        "amount_refunded": refunded,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": stripe_id("txn"),
        "billing_details": {
            "address": _address(),
            "email": story.email,
            "name": "Jenny Rosen",
            "phone": None,
            "tax_id": None,
        },
        "calculated_statement_descriptor": "EXAMPLE SAAS",
        "captured": True,
        "created": story.now - 60,
        "currency": payment.currency,
        "customer": story.customer,
        "description": None,
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": None,
        "failure_message": None,
        "fraud_details": {},
        "livemode": False,
        "metadata": {},
        "on_behalf_of": None,
        "outcome": {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "normal",
            "seller_message": "Payment complete.",
            "type": "authorized",
        },
        "paid": True,
        "payment_intent": payment.payment_intent,
        "payment_method": PAYMENT_METHOD,
        "payment_method_details": {
            "card": {
                "brand": "visa",
                "country": "US",
                "exp_month": 12,
                "exp_year": 2030,
                "funding": "credit",
                "last4": "4242",
                "network": "visa",
            },
            "type": "card",
        },
        "receipt_email": story.email,
        "receipt_number": None,
        "receipt_url": f"https://pay.stripe.com/receipts/payment/{_token(40)}",
        "refunded": refunded >= payment.amount,
        "review": None,
        "shipping": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "succeeded",
        "transfer_data": None,
        "transfer_group": None,
    }


def _dispute_transaction(dispute_id: str, payment: Payment, *, reinstated: bool) -> StripeDict:
    sign = 1 if reinstated else -1
    fee = -sign * DISPUTE_FEE
    return {
        "id": stripe_id("txn"),
        "object": "balance_transaction",
        "amount": sign * payment.amount,
        "currency": payment.currency,
        "description": f"Chargeback {'reversal' if reinstated else 'withdrawal'} "
        f"for {payment.charge}",
        "fee": fee,
        "fee_details": [
            {
                "amount": fee,
                "application": None,
                "currency": payment.currency,
                "description": "Dispute fee refund" if reinstated else "Dispute fee",
                "type": "stripe_fee",
            }
        ],
        "net": sign * payment.amount - fee,
        "reporting_category": "dispute_reversal" if reinstated else "dispute",
        "source": dispute_id,
        "status": "pending",
        "type": "adjustment",
    }


def dispute(
    story: Story, payment: Payment, *, dispute_id: str, status: str, reinstated: bool = False
) -> StripeDict:
    """A chargeback of the pack's charge, `fraudulent` as most card disputes are; Stripe takes
    the amount and its fee when the dispute opens, and gives both back if it is won."""
    answered = status not in ("needs_response", "warning_needs_response")
    transactions = [_dispute_transaction(dispute_id, payment, reinstated=False)]
    if reinstated:
        transactions.append(_dispute_transaction(dispute_id, payment, reinstated=True))
    due_by = (story.now // DAY + EVIDENCE_DAYS) * DAY - 1
    return {
        "id": dispute_id,
        "object": "dispute",
        "amount": payment.amount,
        "balance_transactions": transactions,
        "charge": payment.charge,
        "created": story.now - 10,
        "currency": payment.currency,
        "enhanced_eligibility_types": [],
        "evidence": {
            "access_activity_log": None,
            "billing_address": None,
            "cancellation_policy": None,
            "cancellation_policy_disclosure": None,
            "cancellation_rebuttal": None,
            "customer_communication": None,
            "customer_email_address": story.email if answered else None,
            "customer_name": "Jenny Rosen" if answered else None,
            "customer_purchase_ip": None,
            "customer_signature": None,
            "duplicate_charge_documentation": None,
            "duplicate_charge_explanation": None,
            "duplicate_charge_id": None,
            "enhanced_evidence": {},
            "product_description": "Credit pack" if answered else None,
            "receipt": None,
            "refund_policy": None,
            "refund_policy_disclosure": None,
            "refund_refusal_explanation": None,
            "service_date": None,
            "service_documentation": None,
            "shipping_address": None,
            "shipping_carrier": None,
            "shipping_date": None,
            "shipping_documentation": None,
            "shipping_tracking_number": None,
            "uncategorized_file": None,
            "uncategorized_text": "The customer used the credits." if answered else None,
        },
        "evidence_details": {
            "due_by": due_by,
            "enhanced_eligibility": {},
            "has_evidence": answered,
            "past_due": False,
            "submission_count": 1 if answered else 0,
        },
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {},
        "payment_intent": payment.payment_intent,
        "payment_method_details": {
            "card": {"brand": "visa", "case_type": "chargeback", "network_reason_code": "10.4"},
            "type": "card",
        },
        "reason": "fraudulent",
        "status": status,
    }


# --- The stories ----------------------------------------------------------------------------


def _pack(story: Story, event_type: str) -> CreditPack:
    if story.pack is None:
        raise SampleError(
            f"{event_type} is about a credit-pack purchase, and the plan catalogue "
            "(PLANS_FILE) has no credit pack."
        )
    return story.pack


def _new_payment(pack: CreditPack) -> Payment:
    return Payment(
        checkout_session=checkout_session_id(),
        payment_intent=stripe_id("pi"),
        charge=stripe_id("ch"),
        amount=pack.amount,
        currency=pack.currency,
    )


def _purchase(story: Story, event_type: str) -> tuple[list[Step], Payment]:
    pack = _pack(story, event_type)
    payment = _new_payment(pack)
    return [Step("checkout.session.completed", pack_checkout(story, pack, payment))], payment


def _customers_subscription(story: Story, plan: PlanPrice, ids: SubscriptionIds) -> list[Step]:
    """A new customer's subscription, so its invoices' account shows a plan; a customer given
    with --customer is taken to have one already."""
    if not story.new_customer:
        return []
    return [Step("customer.subscription.created", subscription(story, ids, plan))]


def customer_created(story: Story) -> list[Step]:
    return [Step("customer.created", customer(story), by_request=True)]


def customer_updated(story: Story) -> list[Step]:
    return [
        Step(
            "customer.updated",
            customer(story, email=story.updated_email),
            previous_attributes={"email": story.email},
            by_request=True,
        )
    ]


def checkout_completed(story: Story) -> list[Step]:
    """A Checkout for the starter plan, with what Stripe sends around it: the subscription it
    made and its first invoice, paid (the receipt; the credits, keyed by that invoice)."""
    ids, plan = SubscriptionIds.new(), story.starter
    first_invoice = invoice(
        story, ids, plan, invoice_id=ids.latest_invoice, billing_reason="subscription_create"
    )
    return [
        Step("customer.subscription.created", subscription(story, ids, plan)),
        Step("invoice.paid", first_invoice),
        Step("checkout.session.completed", subscription_checkout(story, ids, plan)),
    ]


def checkout_async_payment_succeeded(story: Story) -> list[Step]:
    """A credit pack paid by bank debit: the session completes unpaid, and the money arrives."""
    event_type = "checkout.session.async_payment_succeeded"
    pack = _pack(story, event_type)
    payment = _new_payment(pack)
    return [
        Step(
            "checkout.session.completed",
            pack_checkout(story, pack, payment, paid=False, delayed=True),
        ),
        Step(event_type, pack_checkout(story, pack, payment, delayed=True)),
    ]


def subscription_created(story: Story) -> list[Step]:
    ids = SubscriptionIds.new()
    return [Step("customer.subscription.created", subscription(story, ids, story.starter))]


def subscription_updated(story: Story) -> list[Step]:
    """An upgrade from starter to pro, its proration invoiced and paid at once: the period's
    credits are topped up, the customer told. The paid invoice comes first so that the named
    event is last; the platform grants the upgrade when both are known, in either order."""
    ids = SubscriptionIds.new()
    old = subscription(story, ids, story.starter)
    upgraded = replace(ids, latest_invoice=stripe_id("in"))
    return [
        Step("customer.subscription.created", old),
        Step("invoice.paid", proration_invoice(story, upgraded, story.starter, story.pro)),
        Step(
            "customer.subscription.updated",
            subscription(story, upgraded, story.pro),
            previous_attributes={"items": old["items"], "latest_invoice": ids.latest_invoice},
            by_request=True,
        ),
    ]


def subscription_deleted(story: Story) -> list[Step]:
    """A starter subscription canceled at once: back to `free`, and the goodbye email."""
    ids = SubscriptionIds.new()
    return [
        Step("customer.subscription.created", subscription(story, ids, story.starter)),
        Step(
            "customer.subscription.deleted",
            subscription(story, ids, story.starter, status="canceled"),
            by_request=True,
        ),
    ]


def _invoice_paid(event_type: str) -> Callable[[Story], list[Step]]:
    def build(story: Story) -> list[Step]:
        """A renewal of the starter plan, paid: the period's credits and a receipt."""
        ids, plan = SubscriptionIds.new(), story.starter
        renewal = invoice(
            story, ids, plan, invoice_id=stripe_id("in"), billing_reason="subscription_cycle"
        )
        return [*_customers_subscription(story, plan, ids), Step(event_type, renewal)]

    return build


def invoice_payment_failed(story: Story) -> list[Step]:
    """A renewal whose card was declined: past due (when the subscription is known here), and
    the pay-now email."""
    ids, plan = SubscriptionIds.new(), story.starter
    renewal = invoice(
        story,
        ids,
        plan,
        invoice_id=stripe_id("in"),
        billing_reason="subscription_cycle",
        paid=False,
    )
    return [*_customers_subscription(story, plan, ids), Step("invoice.payment_failed", renewal)]


def charge_refunded(story: Story) -> list[Step]:
    """A credit pack bought, then refunded in full: the credits go back."""
    steps, payment = _purchase(story, "charge.refunded")
    refunded = charge(story, payment, refunded=payment.amount)
    return [
        *steps,
        Step(
            "charge.refunded",
            refunded,
            previous_attributes={"amount_refunded": 0, "refunded": False},
            by_request=True,
        ),
    ]


def _dispute_story(event_type: str) -> Callable[[Story], list[Step]]:
    """A credit pack bought, then charged back: `created` holds its credits and tells the
    admins; the later events carry on from an opened dispute to where their type says."""

    def build(story: Story) -> list[Step]:
        steps, payment = _purchase(story, event_type)
        dispute_id = stripe_id("dp")

        def opened(**kwargs: Any) -> StripeDict:
            return dispute(story, payment, dispute_id=dispute_id, status="needs_response", **kwargs)

        steps.append(Step("charge.dispute.created", opened()))
        if event_type == "charge.dispute.updated":
            answered = dispute(story, payment, dispute_id=dispute_id, status="under_review")
            steps.append(
                Step(event_type, answered, previous_attributes={"status": "needs_response"})
            )
        elif event_type == "charge.dispute.closed":
            won = dispute(story, payment, dispute_id=dispute_id, status="won", reinstated=True)
            steps.append(Step(event_type, won, previous_attributes={"status": "under_review"}))
        elif event_type == "charge.dispute.funds_withdrawn":
            steps.append(Step(event_type, opened()))
        elif event_type == "charge.dispute.funds_reinstated":
            steps.append(Step("charge.dispute.funds_withdrawn", opened()))
            won = dispute(story, payment, dispute_id=dispute_id, status="won", reinstated=True)
            steps.append(Step(event_type, won))
        return steps

    return build


# Every event type `billing trigger` can send; a test keeps it equal to the handled types.
BUILDERS: dict[str, Callable[[Story], list[Step]]] = {
    "customer.created": customer_created,
    "customer.updated": customer_updated,
    "checkout.session.completed": checkout_completed,
    "checkout.session.async_payment_succeeded": checkout_async_payment_succeeded,
    "customer.subscription.created": subscription_created,
    "customer.subscription.updated": subscription_updated,
    "customer.subscription.deleted": subscription_deleted,
    "invoice.paid": _invoice_paid("invoice.paid"),
    "invoice.payment_succeeded": _invoice_paid("invoice.payment_succeeded"),
    "invoice.payment_failed": invoice_payment_failed,
    "charge.refunded": charge_refunded,
    "charge.dispute.created": _dispute_story("charge.dispute.created"),
    "charge.dispute.updated": _dispute_story("charge.dispute.updated"),
    "charge.dispute.closed": _dispute_story("charge.dispute.closed"),
    "charge.dispute.funds_withdrawn": _dispute_story("charge.dispute.funds_withdrawn"),
    "charge.dispute.funds_reinstated": _dispute_story("charge.dispute.funds_reinstated"),
}


def supported_types() -> list[str]:
    return sorted(BUILDERS)


def build_events(event_type: str, story: Story) -> list[StripeDict]:
    """The events of one trigger, in the order Stripe would send them; the named one last.
    Raises KeyError for a type not in BUILDERS, SampleError when the catalogue lacks a pack."""
    steps = BUILDERS[event_type](story)
    if story.new_customer and event_type != "customer.created":
        steps = [*customer_created(story), *steps]
    last = len(steps) - 1
    return [event(step, created=story.now - (last - i)) for i, step in enumerate(steps)]


def event(
    step: Step, *, created: int, api_version: str = API_VERSION, event_id: str | None = None
) -> StripeDict:
    """The event Stripe sends of one step (a new id unless `event_id` is given)."""
    data: StripeDict = {"object": step.object}
    if step.previous_attributes is not None:
        data["previous_attributes"] = step.previous_attributes
    request = (
        {"id": stripe_id("req", 14), "idempotency_key": str(uuid.uuid4())}
        if step.by_request
        else {"id": None, "idempotency_key": None}
    )
    return {
        "id": event_id or stripe_id("evt"),
        "object": "event",
        "api_version": api_version,
        "created": created,
        "data": data,
        "livemode": False,
        "pending_webhooks": 1,
        "request": request,
        "type": step.type,
    }
