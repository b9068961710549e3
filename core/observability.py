"""Logging and Sentry set-up shared by the API, the worker and beat, and the redaction both use.

Logs: one JSON object per line (`LOG_FORMAT=json`, the default, for log shippers) or a
readable line (`LOG_FORMAT=text`, for a terminal), each carrying the Stripe event and the
Celery task it was written for (see `core.log_context`).

Sentry (only when SENTRY_DSN is set): the FastAPI/Starlette integrations in the API, the
Celery integration in the worker and beat, and one scrubber, `scrub_event`, that every event
passes before it leaves the process. Neither a log line nor a Sentry event ever holds a
whole email address, a secret, an authorization header, a webhook signature or a card number.
"""

from __future__ import annotations

import logging
import logging.config
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import metadata
from typing import TYPE_CHECKING, Any, Final

import sentry_sdk
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter
from sentry_sdk.scrubber import DEFAULT_DENYLIST, DEFAULT_PII_DENYLIST

from core import log_context
from core.settings import Settings, get_settings

if TYPE_CHECKING:
    from sentry_sdk.integrations import Integration

DISTRIBUTION = "stripe-billing-platform"
FILTERED: Final = "[Filtered]"  # what Sentry's own scrubbers write in place of a value
CARD: Final = "[card]"

# Passed as `extra=` to a log call whose error the code reports to Sentry itself: the
# logging integration would otherwise send the same failure a second time, as a message.
REPORTED_ATTRIBUTE = "sentry_reported"
REPORTED: Final[Mapping[str, object]] = {REPORTED_ATTRIBUTE: True}

# --------------------------------------------------------------------------------------
# Redaction
# --------------------------------------------------------------------------------------

# The domain must end in letters: `stripe-billing-platform@0.1.0` (the release) is no address.
# The local part starts only where a run of its characters starts (the lookbehind): without
# that anchor every position of a long run was tried again, quadratic in its length (a 32 KB
# header held the event loop for 3.6 s). `%40` is an `@` in a query string or a referer.
_EMAIL = re.compile(r"(?<![\w.+%-])[\w.+-]+(?:@|%40)[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}(?![\w-])")
# `scheme://user:password@host`: the password goes, the user and the host stay.
# (Anchored at the start of a scheme-character run, like the email pattern, to stay linear.)
_URL_CREDENTIALS = re.compile(
    r"(?<![a-z0-9+.-])([a-z][a-z0-9+.-]*://[^\s/:@]*:)[^\s/@]+@", re.IGNORECASE
)
# Longer strings are cut before redaction: Sentry and a log line gain nothing past this, and
# no regex can then be made to run long on an attacker's megabyte.
MAX_REDACTED_CHARS = 64 * 1024
# Keys that grant access: secret and restricted API keys, webhook signing secrets. The
# prefix is kept, so a reader still sees which kind of key was there.
_STRIPE_SECRET = re.compile(r"\b((?:sk|rk)_(?:live|test)_|whsec_)[0-9A-Za-z]+")
# A credential is 8 characters at least and not a plain lower-case word: prose such as
# "basic auth on for ops" stays readable.
_BEARER = re.compile(r"\b((?i:bearer|basic))\s+(?![a-z]+(?![\w.~+/=-]))[\w.~+/=-]{8,}")
_JWT = re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]*")
# A Stripe-Signature header's signatures (`t=...,v1=<hex>,v0=<hex>`).
_SIGNATURE = re.compile(r"\b(v[01]=)[0-9a-f]{64}\b")
# 13 to 19 digits, maybe grouped by spaces or dashes, not part of a longer number or word,
# starting as the card networks' numbers do (2-6: Mastercard, Amex, Diners, JCB, Visa,
# Discover, UnionPay), and replaced only when the Luhn check passes: millisecond timestamps
# and thread ids (which start with 1) and most other long numbers survive.
_PAN = re.compile(r"(?<!\w)(?<!\d[ -])[2-6](?:[ -]?\d){12,18}(?![ -]?\d)(?!\w)")


def redact_email(address: str) -> str:
    """`jane.doe@example.com` → `j***@example.com`: enough to tell people apart in a log."""
    separator = "@" if "@" in address else "%40"
    local, _, domain = address.partition(separator)
    if not domain:
        return "***"
    return f"{local[:1]}***{separator}{domain}"


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _redact_card(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group(0))
    return CARD if _luhn_valid(digits) else match.group(0)


def redact_text(text: str) -> str:
    """The text without email addresses, Stripe secrets, bearer tokens, webhook signatures
    or card numbers."""
    if len(text) > MAX_REDACTED_CHARS:
        text = text[:MAX_REDACTED_CHARS] + "…[truncated]"
    if "://" in text:
        text = _URL_CREDENTIALS.sub(r"\1" + FILTERED + "@", text)
    if "@" in text or "%40" in text:
        text = _EMAIL.sub(lambda m: redact_email(m.group(0)), text)
    text = _STRIPE_SECRET.sub(r"\1" + FILTERED, text)
    text = _BEARER.sub(r"\1 " + FILTERED, text)
    text = _JWT.sub(FILTERED, text)
    text = _SIGNATURE.sub(r"\1" + FILTERED, text)
    return _PAN.sub(_redact_card, text)


# Sentry's own lists, matched whole (as its EventScrubber does), plus card fields. They
# cannot be handed to the SDK's EventScrubber: the SDK turns that off once `data_collection`
# is configured, which `init_sentry` does.
_DENIED_KEYS = frozenset(
    key.lower().replace("-", "_")
    for key in (*DEFAULT_DENYLIST, *DEFAULT_PII_DENYLIST, "cvc", "cvv", "cvc2", "cvv2")
) | {"exp_month", "exp_year", "card_number"}
# ... and any key containing one of these: `stripe-signature`, `x-api-token`, `db_password`.
_DENIED_KEY_PARTS = (
    "authorization",
    "cookie",
    "signature",
    "token",
    "secret",
    "password",
    "passwd",
    "api_key",
    "apikey",
    "private_key",
)


def is_sensitive_key(key: str) -> bool:
    normal = key.lower().replace("-", "_")
    return normal in _DENIED_KEYS or any(part in normal for part in _DENIED_KEY_PARTS)


def redact_data(value: Any) -> Any:
    """A copy of a JSON-like value with every sensitive key's value filtered and every
    string passed through `redact_text`; anything else is returned as it is."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            (redact_text(k) if isinstance(k, str) else k): (
                FILTERED
                if isinstance(k, str) and is_sensitive_key(k) and v not in (None, "", {}, [])
                else redact_data(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_data(item) for item in value]
    return value


# --------------------------------------------------------------------------------------
# Logging
# --------------------------------------------------------------------------------------

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class JsonLineFormatter(JsonFormatter):
    """One JSON object per line: timestamp, level, logger, message, and whatever context
    or `extra` the record carries (event_id, event_type, task_id, task_name, ...)."""

    def __init__(self) -> None:
        super().__init__(
            ["levelname", "name", "message"],
            rename_fields={"levelname": "level", "name": "logger"},
            # uvicorn's `color_message` repeats the message with terminal colours.
            reserved_attrs=[*RESERVED_ATTRS, REPORTED_ATTRIBUTE, "color_message"],
            # UTF-8 out: names such as "Zoë" stay readable, and every shipper reads UTF-8.
            json_ensure_ascii=False,
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        # The timestamp first, as a reader scanning the lines expects; UTC, ISO 8601.
        log_data["timestamp"] = datetime.fromtimestamp(record.created, tz=UTC).isoformat()
        super().add_fields(log_data, record, message_dict)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        # The last guard: a message, an exception or an `extra` value that slipped an
        # address or a key past its call site is still redacted here.
        # Values json would only turn into text later (an exception, an object) are turned
        # into text first, so that they are redacted too.
        plain = {key: _json_plain(value) for key, value in log_data.items()}
        redacted: dict[str, Any] = redact_data(plain)
        return redacted


def _json_plain(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dict):
        return {str(key): _json_plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_plain(item) for item in value]
    return str(value)


class TextLineFormatter(logging.Formatter):
    """`2025-01-01 12:00:00,000 INFO tasks.events.processing [evt_123] handled ...`"""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        # Built here rather than through a `%(context)s` field: an attribute set on the
        # record would travel on into Sentry's breadcrumbs.
        event_id = getattr(record, log_context.EVENT_ID, None)
        where = f"{record.name} [{event_id}]" if event_id else record.name
        return f"{record.asctime} {record.levelname} {where} {record.message}"

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


def logging_config(
    settings: Settings | None = None, level: int | str = logging.INFO
) -> dict[str, Any]:
    """A `logging.config.dictConfig` for this process, also handed to uvicorn (`log_config`),
    which applies it in each of its worker processes."""
    settings = settings or get_settings()
    formatter = JsonLineFormatter if settings.log_format == "json" else TextLineFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": log_context.ContextFilter}},
        "formatters": {"line": {"()": formatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "line",
                "filters": ["context"],
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
        # uvicorn's loggers write through the root handler too, instead of their own text.
        "loggers": {
            name: {"handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }


def configure_logging(settings: Settings | None = None, level: int | str = logging.INFO) -> None:
    """Route every logger of the process to stderr in the LOG_FORMAT of the settings."""
    logging.config.dictConfig(logging_config(settings, level))


# --------------------------------------------------------------------------------------
# Sentry
# --------------------------------------------------------------------------------------

STRIPE_EVENT_ID_TAG = "stripe_event_id"
STRIPE_EVENT_TYPE_TAG = "stripe_event_type"


def release(settings: Settings) -> str | None:
    """RELEASE, or the installed package's version (`stripe-billing-platform@0.1.0`), so
    that every report says which code sent it even where the deployment sets nothing."""
    if settings.release:
        return settings.release
    try:
        return f"{DISTRIBUTION}@{metadata.version(DISTRIBUTION)}"
    except metadata.PackageNotFoundError:
        return None


def _integrations(component: str) -> list[Integration]:
    # Imported here: each pulls in its framework, and `billing --help` stays fast.
    if component == "api":
        from sentry_sdk.integrations.fastapi import FastApiIntegration
        from sentry_sdk.integrations.starlette import StarletteIntegration

        # Both, with the same options, as the SDK's FastAPI guide asks: Starlette's catches
        # errors in the plain routes (the webhook), FastAPI's names transactions by route.
        return [
            StarletteIntegration(transaction_style="url"),
            FastApiIntegration(transaction_style="url"),
        ]
    # The worker and beat: the integration gives each task an isolation scope of its own,
    # reports what a task raises, and must be set up before the pool forks (celeryd_init).
    from sentry_sdk.integrations.celery import CeleryIntegration

    return [CeleryIntegration(monitor_beat_tasks=False)]


def init_sentry(settings: Settings, *, component: str) -> None:
    """Report errors to Sentry when SENTRY_DSN is set; otherwise do nothing.

    `component` is `api`, `worker` or `beat`: it chooses the integrations and tags every
    report.
    """
    if not settings.sentry_dsn:
        return
    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        environment=settings.app_env,
        release=release(settings),
        integrations=_integrations(component),
        # Keep personal data (emails, IPs, request bodies, SQL parameters) out of Sentry:
        # handlers hold Stripe objects with customer emails in their local variables, which
        # the SDK would otherwise attach to every exception's frames.
        data_collection={
            "user_info": False,
            "http_bodies": [],
            "database_query_data": False,
            "stack_frame_variables": False,
            "cookies": {"mode": "off"},
            # The SDK filters authorization and other credential headers by itself; these
            # terms add Stripe's signature header and the cookie header.
            "http_headers": {"request": {"mode": "denylist", "terms": ["signature", "cookie"]}},
            "url_query_params": {"mode": "denylist", "terms": ["signature", "email"]},
        },
        before_send=scrub_event,
        before_send_transaction=scrub_event,
        traces_sample_rate=0.0,
    )
    # On the global scope: every isolation scope (a request's, a task's) sees it.
    sentry_sdk.get_global_scope().set_tag("component", component)


def scrub_event(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
    """Sentry's `before_send`: the whole event (messages, exception values, breadcrumbs,
    request, tags, extra, contexts) redacted; None drops it.

    Walked whole rather than field by field: a log breadcrumb's message, an exception's
    value or a tag can hold an address as well as any request header can.
    """
    record = hint.get("log_record")
    if record is not None and getattr(record, REPORTED_ATTRIBUTE, False):
        return None
    scrubbed: dict[str, Any] = redact_data(event)
    return scrubbed


def bind_stripe_event(*, event_id: str | None = None, event_type: str | None = None) -> None:
    """From here on, log lines and Sentry reports of this context name the Stripe event.

    The Sentry tags go on the current isolation scope: the caller makes sure it is one of
    its own (a task's, a request's), so the tags end with it.
    """
    log_context.bind(event_id=event_id, event_type=event_type)
    scope = sentry_sdk.get_isolation_scope()
    if event_id is not None:
        scope.set_tag(STRIPE_EVENT_ID_TAG, event_id)
    if event_type is not None:
        scope.set_tag(STRIPE_EVENT_TYPE_TAG, event_type)


def celery_scopes_are_isolated() -> bool:
    """True when Sentry's Celery integration gives each task its own isolation scope."""
    from sentry_sdk.integrations.celery import CeleryIntegration

    return sentry_sdk.get_client().get_integration(CeleryIntegration) is not None
