"""New ids shaped like Stripe's, and the calendar Stripe bills by."""

from __future__ import annotations

import secrets
import string
from datetime import UTC, datetime

DAY = 24 * 60 * 60
_BASE62 = string.digits + string.ascii_letters


def stripe_id(prefix: str, length: int = 24) -> str:
    """A new id shaped like Stripe's: the prefix, then base62 (a leading `1` for most objects,
    as in `evt_1Q...`)."""
    return f"{prefix}_1{token(length - 1)}"


def customer_id() -> str:
    return short_id("cus")


def checkout_session_id() -> str:
    return f"cs_test_a1{token(56)}"


def token(length: int) -> str:
    return "".join(secrets.choice(_BASE62) for _ in range(length))


def short_id(prefix: str) -> str:
    return f"{prefix}_{token(14)}"


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
