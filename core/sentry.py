"""Sentry (only when SENTRY_DSN is set): the FastAPI/Starlette integrations in the API, the
Celery integration in the worker and beat, and one scrubber, `scrub_event`, that every event
passes before it leaves the process (the rules are `core.redaction`'s)."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata
from typing import TYPE_CHECKING, Any, Final

import sentry_sdk

from core import log_context
from core.redaction import redact_data
from core.settings import Settings

if TYPE_CHECKING:
    from sentry_sdk.integrations import Integration

DISTRIBUTION = "stripe-billing-platform"

# Passed as `extra=` to a log call whose error the code reports to Sentry itself: the
# logging integration would otherwise send the same failure a second time, as a message.
REPORTED_ATTRIBUTE = "sentry_reported"
REPORTED: Final[Mapping[str, object]] = {REPORTED_ATTRIBUTE: True}

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
    # Tracing is off, so the trace headers it would add to every published message are too.
    from sentry_sdk.integrations.celery import CeleryIntegration

    return [CeleryIntegration(monitor_beat_tasks=False, propagate_traces=False)]


def _disabled_integrations(component: str) -> list[type[Integration]]:
    """The default integrations a component does without: in the worker, a breadcrumb for
    every SQL statement and every Redis command was about 7 % of an event's CPU on renewal
    day. A report keeps the task's log lines as breadcrumbs, its tags and its traceback.

    The API does without Redis's and Celery's: it only publishes, and they wrap each publish
    (the webhook's batches of row ids, a few dozen a second) with a breadcrumb per Redis
    command and trace headers that no trace uses (tracing is off); py-spy found the
    publishing thread in about 7 % of the API's samples under webhook load. It keeps SQL
    breadcrumbs: the admin API's errors are worth them, and the webhook runs no ORM.
    """
    from sentry_sdk.integrations.redis import RedisIntegration

    if component == "api":
        from sentry_sdk.integrations.celery import CeleryIntegration

        return [RedisIntegration, CeleryIntegration]
    from sentry_sdk.integrations.sqlalchemy import SqlalchemyIntegration

    return [SqlalchemyIntegration, RedisIntegration]


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
        disabled_integrations=_disabled_integrations(component),
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
        # No outgoing request carries Sentry's trace headers: the platform calls only Stripe
        # (its API, its PDF links), which has no use for them, and adding them was about 1 %
        # of the I/O pool's CPU on renewal day.
        trace_propagation_targets=[],
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
