"""Render an email (subject, HTML part, text part) from the Jinja templates.

Each email `name` has three templates: `name.subject.txt`, `name.html` (extending
`base.html`) and `name.txt` (extending `base.txt`). HTML is autoescaped; text and subject
are not, since nothing interprets them as markup.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_date, format_datetime
from babel.numbers import format_currency
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from core.settings import Settings

LOCALE = "en_US"

# How many decimals Stripe's minor units carry. Stripe's lists, not ISO 4217's, decide: ISK,
# for one, has no decimals in ISO but two in Stripe's amounts.
ZERO_DECIMAL = frozenset(
    "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split()  # noqa: SIM905
)
THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())  # noqa: SIM905


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


def money(amount_minor: int | None, currency: str = "usd") -> str:
    """Stripe's minor-unit amount as `$29.00`, `€5.50`, `¥500`."""
    if amount_minor is None:
        return ""
    code = currency.lower()
    digits = 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2
    amount = Decimal(amount_minor).scaleb(-digits)
    return format_currency(
        amount,
        code.upper(),
        locale=LOCALE,
        currency_digits=False,
        format="¤#,##0" + ("." + "0" * digits if digits else ""),
    )


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name) if name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _moment(value: int | float | str | datetime) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return datetime.fromisoformat(value)


def when(value: int | float | str | datetime | None, timezone: str | None = None) -> str:
    """A moment (Unix time, ISO text, datetime) in the reader's zone: `Jan 31, 2027, 14:00 EST`."""
    if value is None:
        return ""
    return format_datetime(
        _moment(value), "MMM d, y, HH:mm zzz", tzinfo=_zone(timezone), locale=LOCALE
    )


def day(value: int | float | str | datetime | None, timezone: str | None = None) -> str:
    """A date in the reader's zone: `January 31, 2027`."""
    if value is None:
        return ""
    return format_date(_moment(value).astimezone(_zone(timezone)), "MMMM d, y", locale=LOCALE)


def build_environment() -> Environment:
    env = Environment(
        loader=PackageLoader("emails", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
        undefined=StrictUndefined,  # a missing value is a bug in the caller, not a blank
        trim_blocks=True,
        lstrip_blocks=True,
        # Compiled once per process: the templates ship with the code, so checking each
        # file's modification time on every render (Jinja's default) buys nothing.
        auto_reload=False,
    )
    env.filters["money"] = money
    env.filters["when"] = when
    env.filters["day"] = day
    return env


class EmailRenderer:
    def __init__(self, settings: Settings) -> None:
        self._env = build_environment()
        self._globals = {
            "product_name": settings.product_name,
            "support_email": settings.support_address,
        }

    def template_names(self) -> list[str]:
        return sorted(
            name.removesuffix(".subject.txt")
            for name in self._env.list_templates()
            if name.endswith(".subject.txt")
        )

    def render(self, name: str, context: dict[str, Any]) -> RenderedEmail:
        values = {"timezone": None, **self._globals, **context}
        subject = self._env.get_template(f"{name}.subject.txt").render(values)
        return RenderedEmail(
            subject=" ".join(subject.split()),  # one line, whatever the template's whitespace
            html=self._env.get_template(f"{name}.html").render(values),
            text=self._env.get_template(f"{name}.txt").render(values),
        )
