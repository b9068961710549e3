"""Read Stripe objects in every shape an account may be pinned to, from 2017-08-15 on.

Webhooks arrive in the API version of the endpoint, so one platform sees several shapes of the
same object. Every reader here takes a plain dict (a webhook's `data.object`, or a fetched
object's `to_dict()`) and looks in each place the field has lived, newest first.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

StripeDict = dict[str, Any]

# Invoices raised for these reasons pay for nothing new: a proration, or an invoice made by hand.
NON_GRANTING_BILLING_REASONS = frozenset({"subscription_update", "manual"})
# A subscription in one of these states has ended for good; Stripe never revives it.
TERMINAL_SUBSCRIPTION_STATUSES = frozenset({"canceled", "incomplete_expired"})


def object_id(value: Any) -> str | None:
    """An id, whether the field holds the id or the whole (expanded) object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def timestamp(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return datetime.fromtimestamp(value, UTC)


def unix_time(moment: datetime | None) -> int | None:
    """The inverse of `timestamp`: what email contexts and Stripe's own fields use."""
    return int(moment.timestamp()) if moment else None


def _dig(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _list_data(value: Any) -> list[StripeDict]:
    """The items of a Stripe list object (or of a bare list, as some old payloads have)."""
    data = value.get("data") if isinstance(value, dict) else value
    return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []


# --- Subscriptions ----------------------------------------------------------------------------


def subscription_items(subscription: StripeDict) -> list[StripeDict]:
    return _list_data(subscription.get("items"))


def item_price_id(item: StripeDict) -> str | None:
    """`item.price.id` (2018-02-05 on) or the legacy `item.plan.id`."""
    return object_id(item.get("price")) or object_id(item.get("plan"))


def subscription_price_id(subscription: StripeDict) -> str | None:
    """The price of the subscription's first item, or the oldest accounts' top-level `plan`."""
    for item in subscription_items(subscription):
        price = item_price_id(item)
        if price:
            return price
    return object_id(subscription.get("plan"))


def subscription_period(subscription: StripeDict) -> tuple[datetime | None, datetime | None]:
    """(start, end) of the current period: on the subscription before 2025-03-31.basil, on
    each item since (all items share it for the plans this platform sells)."""
    start = subscription.get("current_period_start")
    end = subscription.get("current_period_end")
    if end is None:
        items = subscription_items(subscription)
        ends = [i["current_period_end"] for i in items if i.get("current_period_end")]
        starts = [i["current_period_start"] for i in items if i.get("current_period_start")]
        end = max(ends, default=None)
        start = min(starts, default=None)
    return timestamp(start), timestamp(end)


def previous_price_id(previous_attributes: StripeDict) -> str | None:
    """The price before an update, from `previous_attributes` in any shape; None if unchanged."""
    if not previous_attributes:
        return None
    items = previous_attributes.get("items")
    if items is not None:
        for item in _list_data(items):
            price = item_price_id(item)
            if price:
                return price
    return object_id(previous_attributes.get("plan"))


def starts_new_period(subscription: StripeDict, previous_attributes: StripeDict) -> bool:
    """Whether an update moved the billing period (a renewal, or a change that reset the
    billing cycle): a previous `current_period_start`, at the top level or, since
    2025-03-31.basil, on the items (which Stripe lists whole), other than the current one."""
    if not previous_attributes:
        return False
    starts = [previous_attributes.get("current_period_start")]
    items = previous_attributes.get("items")
    if items is not None:
        starts += [item.get("current_period_start") for item in _list_data(items)]
    current, _ = subscription_period(subscription)
    return any(timestamp(start) not in (None, current) for start in starts)


# --- Invoices ---------------------------------------------------------------------------------


def invoice_subscription_id(invoice: StripeDict) -> str | None:
    """`invoice.subscription` (before 2025-03-31.basil) or its `parent.subscription_details`."""
    return object_id(invoice.get("subscription")) or object_id(
        _dig(invoice, "parent", "subscription_details", "subscription")
    )


def invoice_lines(invoice: StripeDict) -> list[StripeDict]:
    return _list_data(invoice.get("lines"))


def line_price_id(line: StripeDict) -> str | None:
    """`pricing.price_details.price` (newest), `price.id`, or the legacy `plan.id`."""
    return (
        object_id(_dig(line, "pricing", "price_details", "price"))
        or object_id(line.get("price"))
        or object_id(line.get("plan"))
    )


def _line_is_subscription(line: StripeDict) -> bool:
    return bool(
        line.get("type") == "subscription"
        or object_id(line.get("subscription"))
        or _dig(line, "parent", "subscription_item_details", "subscription")
    )


def _line_is_proration(line: StripeDict) -> bool:
    return bool(
        line.get("proration")
        or _dig(line, "parent", "subscription_item_details", "proration")
        or _dig(line, "parent", "invoice_item_details", "proration")
    )


def line_subscription_id(line: StripeDict) -> str | None:
    """The subscription a line bills: `line.subscription` (before 2025-03-31.basil), or the
    subscription its parent item or invoice item belongs to (since)."""
    return (
        object_id(line.get("subscription"))
        or object_id(_dig(line, "parent", "subscription_item_details", "subscription"))
        or object_id(_dig(line, "parent", "invoice_item_details", "subscription"))
    )


def invoice_prorations(invoice: StripeDict) -> list[StripeDict]:
    """The invoice's proration lines as `{"subscription", "price", "start", "end", "amount"}`:
    what a plan change billed, on its own invoice (`always_invoice`) or on the next renewal
    (`create_prorations`). A positive amount charges for the time left on the line's price;
    a negative one credits the unused time of the price left behind."""
    prorations = []
    for line in invoice_lines(invoice):
        if not _line_is_proration(line):
            continue
        period = line.get("period") or {}
        prorations.append(
            {
                "subscription": line_subscription_id(line) or invoice_subscription_id(invoice),
                "price": line_price_id(line),
                "start": period.get("start"),
                "end": period.get("end"),
                "amount": int(line.get("amount") or 0),
            }
        )
    return prorations


def invoice_line_summaries(invoice: StripeDict) -> list[StripeDict]:
    """What an invoice document shows of each line, `{"description", "quantity", "amount",
    "currency", "start", "end"}`: the same fields in every API version."""
    summaries = []
    for line in invoice_lines(invoice):
        period = line.get("period") or {}
        summaries.append(
            {
                "description": line.get("description"),
                "quantity": line.get("quantity"),
                "amount": int(line.get("amount") or 0),
                "currency": line.get("currency") or invoice.get("currency"),
                "start": period.get("start"),
                "end": period.get("end"),
            }
        )
    return summaries


def invoice_status(invoice: StripeDict) -> str | None:
    """`status`; the oldest shapes have only the `paid` flag."""
    status = invoice.get("status")
    if status:
        return status
    return "paid" if invoice.get("paid") is True else None


def invoice_price_id(invoice: StripeDict) -> str | None:
    """The price the invoice bills: its subscription line's, prorations last."""
    lines = invoice_lines(invoice)
    ranked = sorted(
        lines, key=lambda line: (not _line_is_subscription(line), _line_is_proration(line))
    )
    return next((p for p in map(line_price_id, ranked) if p), None)


def invoice_payment_ids(invoice: StripeDict) -> tuple[str | None, str | None]:
    """(payment intent, charge) that paid the invoice: `payment_intent` and `charge` (the
    charge sometimes expanded) before 2025-03-31.basil, `payments` since."""
    intent = object_id(invoice.get("payment_intent"))
    charge_value = invoice.get("charge")
    charge = object_id(charge_value)
    if intent is None and isinstance(charge_value, dict):
        intent = object_id(charge_value.get("payment_intent"))
    for payment in _list_data(invoice.get("payments")):
        details = payment.get("payment") or {}
        intent = intent or object_id(details.get("payment_intent"))
        charge = charge or object_id(details.get("charge"))
    return intent, charge


def invoice_grants_credits(invoice: StripeDict) -> bool:
    """A subscription invoice grants its period's credits unless it only settles a change
    (`subscription_update`, or, where old API versions send no `billing_reason`, lines that
    are all prorations) or was made by hand (`manual`). Otherwise a missing or null reason
    counts as a renewal."""
    if invoice.get("billing_reason") in NON_GRANTING_BILLING_REASONS:
        return False
    lines = invoice_lines(invoice)
    return not lines or not all(_line_is_proration(line) for line in lines)


def invoice_period(invoice: StripeDict) -> tuple[datetime | None, datetime | None]:
    """The service period the invoice pays for: its subscription line's, else the invoice's."""
    # Prorations last: a renewal carrying a mid-period change's proration lines pays for the
    # new period, which its subscription line names.
    lines = sorted(
        invoice_lines(invoice),
        key=lambda li: (not _line_is_subscription(li), bool(_line_is_proration(li))),
    )
    for line in lines:
        period = line.get("period") or {}
        if period.get("end"):
            return timestamp(period.get("start")), timestamp(period.get("end"))
    return timestamp(invoice.get("period_start")), timestamp(invoice.get("period_end"))


def invoice_billing_months(invoice: StripeDict) -> int | None:
    """How many months one period of the invoice's subscription line covers: the line's
    `price.recurring` or legacy `plan` interval where the version has it, else (since
    2025-03-31.basil, whose lines name only the price id) the length of the line's period."""
    lines = sorted(invoice_lines(invoice), key=lambda li: not _line_is_subscription(li))
    for line in lines:
        if _line_is_proration(line):
            continue
        price = line.get("price") if isinstance(line.get("price"), dict) else None
        recurring = (price or {}).get("recurring") or line.get("plan") or {}
        if isinstance(recurring, dict) and recurring.get("interval"):
            months = _INTERVAL_MONTHS.get(recurring["interval"])
            if months is not None:
                return months * int(recurring.get("interval_count") or 1)
        period = line.get("period") or {}
        if period.get("start") and period.get("end"):
            days = (int(period["end"]) - int(period["start"])) / 86_400
            return max(0, round(days / 30.4375))
    return None


# A year in months, and the shorter intervals as the fraction they are of a month (0).
_INTERVAL_MONTHS = {"year": 12, "month": 1, "week": 0, "day": 0}


# --- Invoice payments (2025-03-31.basil on: an invoice paid in several parts) ------------------


def invoice_payment_payment_ids(payment: StripeDict) -> tuple[str | None, str | None]:
    """(payment intent, charge) of one `invoice_payment`: `payment.payment_intent` or
    `payment.charge`, as its `payment.type` says."""
    details = payment.get("payment") or {}
    return object_id(details.get("payment_intent")), object_id(details.get("charge"))


def invoice_payment_paid_at(payment: StripeDict) -> datetime | None:
    return timestamp(_dig(payment, "status_transitions", "paid_at") or payment.get("created"))


# --- Checkout sessions ----------------------------------------------------------------------


def checkout_promotions_consent(checkout: StripeDict) -> bool:
    """Whether the customer agreed to promotional email in this session (`consent_collection`
    asked, and `consent.promotions` answered `opt_in`)."""
    return _dig(checkout, "consent", "promotions") == "opt_in"


# --- Customers and emails ---------------------------------------------------------------------


def customer_email(obj: StripeDict) -> str | None:
    """The customer's email from a customer, an invoice or a Checkout session."""
    email = (
        (obj.get("email") if obj.get("object") == "customer" else None)
        or obj.get("customer_email")
        or _dig(obj, "customer_details", "email")
        or _dig(obj, "customer", "email")
    )
    return email if isinstance(email, str) and email else None


def metadata_user_id(obj: StripeDict) -> str | None:
    value = _dig(obj, "metadata", "user_id")
    return str(value) if value not in (None, "") else None
