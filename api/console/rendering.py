"""The console's Jinja environment (autoescaping on) and the filters its pages share."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from core.redaction import redact_data

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

templates = Jinja2Templates(directory=TEMPLATES)


def _when(value: datetime | None) -> str:
    return "—" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _countdown(deadline: datetime | None, now: datetime | None = None) -> str:
    """`3d 4h left`, `5h 12m left` or `overdue by 2h 3m`: what an operator reads first."""
    if deadline is None:
        return "no deadline"
    seconds = int((deadline - (now or datetime.now(UTC))).total_seconds())
    late, seconds = seconds < 0, abs(seconds)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes = rest // 60
    span = f"{days}d {hours}h" if days else f"{hours}h {minutes}m"
    return f"overdue by {span}" if late else f"{span} left"


def _urgency(deadline: datetime | None) -> str:
    if deadline is None:
        return "calm"
    hours = (deadline - datetime.now(UTC)).total_seconds() / 3600
    return "overdue" if hours < 0 else "urgent" if hours < 48 else "soon" if hours < 168 else "calm"


def _money(amount: int | None, currency: str | None) -> str:
    if amount is None:
        return "—"
    return f"{amount / 100:,.2f} {(currency or '').upper()}".strip()


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def _pretty_json(value: Any) -> str:
    """The stored payload as an operator may read it: redacted the way logs are."""
    return json.dumps(redact_data(value), indent=2, sort_keys=True, default=str)


def _gap(later: datetime | None, earlier: datetime | None) -> str:
    if later is None or earlier is None:
        return "—"
    return _seconds((later - earlier).total_seconds())


templates.env.filters.update(
    when=_when,
    countdown=_countdown,
    urgency=_urgency,
    money=_money,
    seconds=_seconds,
    pretty_json=_pretty_json,
)
templates.env.globals.update(gap=_gap)


def render(
    request: Request, name: str, context: dict[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    """A page (or, for htmx, a fragment), never cached, framed or sent elsewhere."""
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response


# Scripts only from the console's own static files; no framing (clickjacking a confirmation
# button), no referrer carrying an event id or a search to another site.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
