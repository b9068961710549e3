"""`billing trigger EVENT_TYPE`: send the platform a realistic, signed Stripe event, like
`stripe trigger`, and print each event's id and the HTTP status it got.

The events come from `cli.sample_events` (with the events Stripe sends before the named one).
Where they go: `--url`, else the API of a running `billing up` (its `var/up.json`), else the
default `billing api` address. The signing secret: STRIPE_WEBHOOK_SECRET (the first one), else
the one `billing up` made (in `var/up.json`).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

import click

from cli.sample_events import SampleError, Story, build_events, supported_types
from cli.up.state import STATE_FILE, VAR_DIR
from core.plans import Catalogue, load_catalogue
from core.settings import PRICE_VARIABLE_PREFIX, ConfigurationError, Settings, load_settings
from core.webhook_signing import stripe_signature_header

if TYPE_CHECKING:
    import httpx

DEFAULT_API_URL = "http://127.0.0.1:8000"
WEBHOOK_PATH = "/api/stripe/webhook"
UP_STATE_FILE = VAR_DIR / STATE_FILE
TIMEOUT_SECONDS = 10.0
# The platform handles events in any order, but a story's later events only show their effect
# once the earlier ones are applied (a dispute holds the credits of a purchase already stored;
# an upgrade email needs the customer's address). An idle local worker handles an event in
# milliseconds, so this pause lets each one land before the next, as Stripe's spread-out
# deliveries would.
SETTLE_SECONDS = 0.5
CUSTOMER_ID = re.compile(r"cus_[A-Za-z0-9]+")


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"billing trigger: {message}", err=True)
    sys.exit(code)


@click.command(
    epilog="Supported event types: " + ", ".join(supported_types()) + ".",
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.argument("event_type")
@click.option(
    "--url",
    help="The webhook endpoint [default: the API of a running billing up (var/up.json), "
    f"else {DEFAULT_API_URL}{WEBHOOK_PATH}]; a bare address gets {WEBHOOK_PATH}.",
)
@click.option(
    "--customer",
    help="Make every object belong to this Stripe customer (cus_...) [default: a new one].",
)
@click.option(
    "--story",
    "story_name",
    help="Another story of the type: `ce3` (charge.dispute.created) is a Visa Compelling "
    "Evidence 3.0 case, the same card having paid twice 120 to 365 days before.",
)
def trigger(event_type: str, url: str | None, customer: str | None, story_name: str | None) -> None:
    """Send a realistic, signed Stripe event of EVENT_TYPE to the platform."""
    if event_type not in supported_types():
        _fail(
            f"unknown event type {event_type!r}; the supported types are "
            + ", ".join(supported_types())
            + ".",
            2,
        )
    if customer is not None and not CUSTOMER_ID.fullmatch(customer):
        _fail(f"--customer must be a Stripe customer id (cus_...), not {customer!r}.", 2)
    settings, catalogue = _configuration()
    target = _webhook_url(url)
    secret = _signing_secret(settings)
    story = Story.begin(catalogue, customer=customer)
    try:
        events = build_events(event_type, story, name=story_name)
    except SampleError as exc:
        _fail(str(exc), 2)
    for warning in _unknown_price_warnings(settings, story, events):
        click.echo(f"billing trigger: {warning}", err=True)
    if story.new_customer:
        click.echo(
            f"customer {story.customer} (new; --customer {story.customer} continues its story)"
        )
    _deliver(events, target, secret)


def _configuration() -> tuple[Settings, Catalogue]:
    # The plan prices a running `billing up` gave the platform, unless this shell says
    # otherwise: the events then name prices the platform knows.
    if UP_STATE_FILE.exists():
        for name, value in ((_read_up_state() or {}).get("settings") or {}).items():
            if isinstance(name, str) and name.startswith(PRICE_VARIABLE_PREFIX):
                os.environ.setdefault(name, str(value))
    try:
        settings = load_settings()
        return settings, load_catalogue(settings)
    except ConfigurationError as exc:
        click.echo(f"billing: configuration error: {exc}", err=True)
        sys.exit(2)


def _read_up_state() -> dict[str, Any] | None:
    """What a running `billing up` wrote (`api_url`, `webhook_secret`), if it is running here;
    read only when an option or a setting does not already say it."""
    try:
        text = UP_STATE_FILE.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        _fail(f"{UP_STATE_FILE} cannot be read: {exc.strerror}.", 2)
    try:
        state = json.loads(text)
    except json.JSONDecodeError:
        state = None
    if not isinstance(state, dict):
        _fail(f"{UP_STATE_FILE} is not what billing up writes; delete it or use --url.", 2)
    if not _running(state.get("pid")):
        # Left by a billing up that was killed: its address and secret mean nothing now.
        return None
    return state


def _running(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        return True
    return True


def _webhook_url(option: str | None) -> str:
    if option is None:
        api_url = (_read_up_state() or {}).get("api_url")
        base = api_url if isinstance(api_url, str) and api_url else DEFAULT_API_URL
        return base.rstrip("/") + WEBHOOK_PATH
    parts = urlsplit(option)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        _fail(f"--url must be an http(s) URL such as {DEFAULT_API_URL}{WEBHOOK_PATH}.", 2)
    # `stripe listen --forward-to` wants the whole path; the API's address alone is just as clear.
    return option.rstrip("/") + WEBHOOK_PATH if parts.path in ("", "/") else option


def _signing_secret(settings: Settings) -> str:
    if settings.webhook_secrets:
        return settings.webhook_secrets[0]
    secret = (_read_up_state() or {}).get("webhook_secret")
    if isinstance(secret, str) and secret:
        return secret
    _fail(
        "no webhook secret to sign with: set STRIPE_WEBHOOK_SECRET to the platform's, "
        "or run billing up, which makes one.",
        2,
    )


def _unknown_price_warnings(
    settings: Settings, story: Story, events: list[dict[str, Any]]
) -> list[str]:
    """One sentence for each plan the events name whose price the platform cannot know."""
    text = json.dumps(events)
    return [
        f"{settings.price_variable(plan.plan)} is not set, so the platform does not know the "
        f"{plan.plan} plan's price ({plan.price_id} here) and grants no plan credits for it."
        for plan in (story.starter, story.pro)
        if not plan.configured and plan.price_id in text
    ]


def _deliver(events: list[dict[str, Any]], url: str, secret: str) -> None:
    """POST each event in turn, signed as Stripe signs; stop at the first one not accepted."""
    # Imported here: `cli.main` imports this module for every command.
    import httpx

    with httpx.Client(timeout=TIMEOUT_SECONDS) as client:
        for number, event in enumerate(events):
            if number:
                time.sleep(SETTLE_SECONDS)
            body = json.dumps(event, indent=2).encode()
            headers = {
                "Content-Type": "application/json; charset=utf-8",
                "Stripe-Signature": stripe_signature_header(body, secret),
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            }
            try:
                response = client.post(url, content=body, headers=headers)
            except httpx.ConnectError:
                _fail(f"cannot connect to {url}; is the platform running (billing up)?", 1)
            except httpx.TimeoutException:
                _fail(f"{url} did not answer within {TIMEOUT_SECONDS:.0f} s.", 1)
            except httpx.HTTPError as exc:
                _fail(f"cannot POST to {url}: {exc}.", 1)
            click.echo(f"{event['id']} {response.status_code} {event['type']}")
            if not response.is_success:
                _fail(
                    f"{url} answered {response.status_code} to {event['type']}{_detail(response)}.",
                    1,
                )


def _detail(response: httpx.Response) -> str:
    """The API's own `detail` sentence, when it sent one."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return ""
    return f": {str(detail).rstrip('.')}" if detail else ""
