"""The platform's Prometheus instruments, each defined once, and how a process exposes them.

These count what one process did: the API what it received, a worker what it processed and
sent. Truths about the whole fleet (the backlog, failed rows, the last reconciliation) are
read from PostgreSQL when `/metrics` is scraped instead (`api.routes.metrics`), so they are
right whatever the number of processes.

Label values come from the code, never from a request: an event type is one the registry
handles, `other` (stored but unhandled) or `unknown` (rejected before it could be trusted),
and an email template is one of the package's templates, else `other`.

Multiprocess mode: with `PROMETHEUS_MULTIPROC_DIR` set (before prometheus_client is
imported), every process writes its values to files there and an exposition sums them all,
so one scrape covers uvicorn's workers, or a Celery worker's prefork pool. Every instrument
here is a counter or a histogram: a dead process's counts stay in the sum, as a counter's
must. No gauge is per process (`live*`), so `mark_process_dead` has nothing to remove;
the worker calls it anyway as its pool processes exit. Processes must not share one
directory across PID namespaces (two containers): two processes with one PID would write
one file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Container, Iterable, Iterator
from enum import StrEnum
from functools import cache
from importlib.resources import files

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

OTHER = "other"
UNKNOWN = "unknown"

# Multiprocess files never carry `_created` series; without them here too, a process exposes
# the same series in either mode (and half as many of them).
disable_created_metrics()


class ReceivedOutcome(StrEnum):
    """What the webhook endpoint did with one delivery."""

    STORED = "stored"  # a handled type, stored for its task
    DUPLICATE = "duplicate"  # that event id was stored before
    IGNORED = "ignored"  # an unhandled type, stored for the audit only
    REJECTED = "rejected"  # a 4xx: no or bad signature, too big, not an event, unstorable
    ERROR = "error"  # a 5xx: no secret configured, or the database could not store it


class ProcessedOutcome(StrEnum):
    """How one attempt of a `stripe.<type>` task ended."""

    PROCESSED = "processed"
    IGNORED = "ignored"
    SKIPPED = "skipped"  # another delivery held it, it was done already, or a later claim won
    RETRIED = "retried"  # a transient error; a retry is scheduled
    FAILED = "failed"  # a permanent error, or retries ran out


class EmailOutcome(StrEnum):
    SENT = "sent"
    RETRIED = "retried"  # a temporary SMTP failure; a retry is scheduled
    FAILED = "failed"  # a permanent refusal, a rendering error, or retries ran out


WEBHOOK_EVENTS_RECEIVED = Counter(
    "billing_webhook_events_received",
    "Stripe deliveries answered by the webhook endpoint, by event type and outcome.",
    ["type", "outcome"],
)
EVENT_PROCESSING_SECONDS = Histogram(
    "billing_event_processing_seconds",
    "Run time of one attempt of a stripe.<type> task (claim, handler, final status).",
    ["type"],
    # Most handlers take milliseconds; Stripe calls take hundreds; the soft limit is 240 s.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 240),
)
EVENT_END_TO_END_SECONDS = Histogram(
    "billing_event_end_to_end_seconds",
    "From storing an event (received_at) to committing it processed, by event type.",
    ["type"],
    # Sub-second when all is well; minutes behind retries or the sweep; hours in an outage.
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600),
)
EVENTS_PROCESSED = Counter(
    "billing_events_processed",
    "Attempts of stripe.<type> tasks, by event type and outcome.",
    ["type", "outcome"],
)
EVENTS_UNPROVEN_API_VERSION = Counter(
    "billing_events_unproven_api_version",
    "Events processed whose API version is outside the range the fixtures prove (older than "
    "the oldest, newer than the newest, or unreadable), by event type and standing.",
    ["type", "standing"],
)
CHECKOUT_SESSIONS_EXPIRED = Counter(
    "billing_checkout_sessions_expired",
    "Checkout Sessions that expired unpaid (abandoned checkouts), by mode, counted once each.",
    ["mode"],
)
EMAILS = Counter(
    "billing_emails",
    "Attempts to deliver an email_log row, by template and outcome.",
    ["template", "outcome"],
)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_DIR_VARIABLE) or None


@cache
def email_templates() -> frozenset[str]:
    """Every email the package can render: each has a `<name>.subject.txt`."""
    templates = files("emails") / "templates"
    suffix = ".subject.txt"
    return frozenset(
        entry.name.removesuffix(suffix)
        for entry in templates.iterdir()
        if entry.name.endswith(suffix)
    )


def email_template_label(template: str) -> str:
    return template if template in email_templates() else OTHER


def event_type_label(event_type: str, *, handled: Container[str]) -> str:
    return event_type if event_type in handled else OTHER


class _Delegate(Collector):
    """Another registry's collectors, seen through a registry built for one scrape."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        return self._registry.collect()


class SharedFilesCollector(Collector):
    """The multiprocess files' series, and whether they could be read: a damaged or deleted
    directory must cost its own series only, never the answer (the fleet's series follow)."""

    def __init__(self, path: str) -> None:
        self._path = path

    def collect(self) -> Iterator[Metric]:
        try:
            # A list first: a file that breaks halfway must not leave half its series out.
            shared = list(MultiProcessCollector(None, path=self._path).collect())
        except Exception as exc:
            log.warning("metrics: the multiprocess directory cannot be read: %s", exc)
            shared = []
            readable = 0
        else:
            readable = 1
        yield from shared
        yield GaugeMetricFamily(
            "billing_metrics_multiprocess_up",
            "1 if the processes' shared metrics files (PROMETHEUS_MULTIPROC_DIR) were read.",
            value=readable,
        )


def exposition(accept: str | None, extra: Iterable[Collector] = ()) -> tuple[bytes, str]:
    """(body, content type) of this process's series, or every process's in multiprocess
    mode, followed by `extra`'s, in the format the scraper's Accept header asks for."""
    registry = CollectorRegistry()
    path = multiprocess_dir()
    if path:
        # Only the files: the process's own registry holds just its own share of the values.
        registry.register(SharedFilesCollector(path))
    else:
        registry.register(_Delegate(REGISTRY))
    for collector in extra:
        registry.register(collector)
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
