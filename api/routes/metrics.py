"""`GET /metrics`: Prometheus series of this API (or, in multiprocess mode, of every process
sharing the directory), followed by the fleet's state as PostgreSQL knows it at this scrape.

Scraping must not slow the webhook path: the database is read asynchronously on a
connection of its own, opened for the scrape (the event store's are for storing, and a slow
read must not make `/readyz` wait on the readiness pool), in one statement whose every part
is an index-only read (migration 0008), under a statement timeout and an overall deadline;
the exposition is built in a thread. When the database cannot answer in time, the answer is
still a 200, with `billing_metrics_database_up 0` and no fleet series: the process's own
series matter most exactly then.

Every API process answers with the same fleet series; aggregate them with `max without
(instance)` rather than `sum`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from fastapi import APIRouter, Request, Response
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from psycopg.conninfo import conninfo_to_dict

from billing.registry import HANDLERS
from core.metrics import email_template_label, email_templates, event_type_label, exposition
from core.settings import Settings

log = logging.getLogger(__name__)

router = APIRouter()

# The whole read, connection included; a scrape usually times out at 10 s.
FLEET_READ_TIMEOUT_SECONDS = 2.0
# How long one read answers every scrape of this process (see FleetStateCache).
FLEET_STATE_MAX_AGE = 1.0
STATEMENT_TIMEOUT_MS = 500

# One statement is one snapshot and one round trip. Each part reads an index of only the
# rows it reports (0008); the last run is the newest row that is not running (at most one
# row runs, and runs go one after another, so id order is finishing order).
FLEET_STATE = """
SELECT
    (SELECT EXTRACT(EPOCH FROM now() - min(received_at))::float8 FROM webhook_events
      WHERE status IN ('received', 'queued', 'processing')),
    (SELECT json_object_agg(type, n) FROM (
        SELECT type, count(*) AS n FROM webhook_events WHERE status = 'failed' GROUP BY type
     ) AS f),
    (SELECT count(*) FROM email_log WHERE status = 'pending'),
    (SELECT json_object_agg(template, n) FROM (
        SELECT template, count(*) AS n FROM email_log WHERE status = 'failed' GROUP BY template
     ) AS f),
    (SELECT json_build_object(
        'succeeded', status = 'succeeded', 'checked', checked, 'drifted', drifted,
        'fixed', fixed, 'finished_at', EXTRACT(EPOCH FROM finished_at)::float8)
       FROM reconciliation_runs WHERE status <> 'running' ORDER BY id DESC LIMIT 1),
    (SELECT json_object_agg(network, json_build_object('ratio', ratio, 'status', status))
       FROM (SELECT DISTINCT ON (network) network, ratio, status FROM dispute_ratio_snapshots
              ORDER BY network, computed_at DESC) AS r)
"""


@dataclass(frozen=True, slots=True)
class LastRun:
    succeeded: bool
    checked: int
    drifted: int
    fixed: int
    finished_at: float | None  # Unix time


@dataclass(frozen=True, slots=True)
class FleetState:
    oldest_unprocessed_age_seconds: float  # 0 when nothing waits
    failed_events: dict[str, int] = field(default_factory=dict)  # by type label
    pending_emails: int = 0
    failed_emails: dict[str, int] = field(default_factory=dict)  # by template label
    last_run: LastRun | None = None
    # The daily check's latest figures per card network: {"visa": {"ratio", "status"}}.
    dispute_ratios: dict[str, dict[str, Any]] = field(default_factory=dict)


async def read_fleet_state(settings: Settings) -> FleetState | None:
    """The fleet's state, or None when the database does not answer in time."""
    try:
        async with asyncio.timeout(FLEET_READ_TIMEOUT_SECONDS):
            conn = await psycopg.AsyncConnection.connect(
                settings.libpq_url,
                autocommit=True,
                connect_timeout=max(2, int(FLEET_READ_TIMEOUT_SECONDS)),
                options=_session_options(settings.libpq_url),
                application_name="billing-metrics",
            )
            async with conn:
                cursor = await conn.execute(FLEET_STATE)
                row = await cursor.fetchone()
    except (TimeoutError, psycopg.Error, OSError) as exc:
        log.warning("metrics: the database did not answer: %s", str(exc).strip() or "timeout")
        return None
    return None if row is None else _fleet_state(*row)


def _session_options(conninfo: str) -> str:
    """The URL's own `options` (a search_path, say) and this read's limits, which the server
    applies as the session starts: no round trip of their own."""
    own = conninfo_to_dict(conninfo).get("options") or ""
    limits = f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c default_transaction_read_only=on"
    return f"{own} {limits}".strip()


def _fleet_state(
    oldest_age: float | None,
    failed_events: dict[str, int] | None,
    pending_emails: int,
    failed_emails: dict[str, int] | None,
    last_run: dict[str, Any] | None,
    dispute_ratios: dict[str, dict[str, Any]] | None = None,
) -> FleetState:
    events_by_type: dict[str, int] = dict.fromkeys(HANDLERS, 0)
    for event_type, count in (failed_events or {}).items():
        label = event_type_label(event_type, handled=HANDLERS)
        events_by_type[label] = events_by_type.get(label, 0) + count
    emails_by_template: dict[str, int] = dict.fromkeys(email_templates(), 0)
    for template, count in (failed_emails or {}).items():
        label = email_template_label(template)
        emails_by_template[label] = emails_by_template.get(label, 0) + count
    return FleetState(
        oldest_unprocessed_age_seconds=max(0.0, oldest_age or 0.0),
        failed_events=events_by_type,
        pending_emails=pending_emails,
        failed_emails=emails_by_template,
        last_run=LastRun(**last_run) if last_run else None,
        dispute_ratios=dispute_ratios or {},
    )


class FleetCollector(Collector):
    """The series of one `FleetState` (read before the exposition, which is synchronous)."""

    def __init__(self, state: FleetState | None) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        state = self._state
        yield GaugeMetricFamily(
            "billing_metrics_database_up",
            "1 if PostgreSQL answered this scrape's fleet read in time, else 0.",
            value=0 if state is None else 1,
        )
        if state is None:
            return
        yield GaugeMetricFamily(
            "billing_oldest_unprocessed_event_age_seconds",
            "Age of the oldest event stored but not processed yet "
            "(received, queued or processing); 0 when none waits.",
            value=state.oldest_unprocessed_age_seconds,
        )
        yield _by_label(
            "billing_failed_events",
            "Stored events in status failed (replay them with `billing replay`), by type.",
            "type",
            state.failed_events,
        )
        yield GaugeMetricFamily(
            "billing_pending_emails",
            "Emails stored but not delivered yet (email_log rows in status pending).",
            value=state.pending_emails,
        )
        yield _by_label(
            "billing_failed_emails",
            "Emails that failed for good (email_log rows in status failed), by template.",
            "template",
            state.failed_emails,
        )
        yield from _last_run_series(state.last_run)
        yield from _dispute_ratio_series(state.dispute_ratios)


def _by_label(name: str, documentation: str, label: str, values: dict[str, int]) -> Metric:
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for value_label, value in sorted(values.items()):
        family.add_metric([value_label], value)
    return family


RATIO_STATUSES = {"ok": 0, "warning": 1, "over": 2}


def _dispute_ratio_series(ratios: dict[str, dict[str, Any]]) -> Iterator[Metric]:
    if not ratios:  # the daily check has not run yet
        return
    ratio = GaugeMetricFamily(
        "billing_dispute_ratio",
        "The card network's monitoring ratio at the daily check (Visa VAMP: fraud reports "
        "plus disputes over settled transactions; Mastercard ECP: chargebacks over the "
        "previous month's), by network.",
        labels=["network"],
    )
    status = GaugeMetricFamily(
        "billing_dispute_ratio_status",
        "0 ok, 1 warning (70% of the threshold), 2 over the network's threshold, by network.",
        labels=["network"],
    )
    for network, figures in sorted(ratios.items()):
        ratio.add_metric([network], float(figures.get("ratio") or 0))
        status.add_metric([network], RATIO_STATUSES.get(str(figures.get("status")), 0))
    yield ratio
    yield status


def _last_run_series(run: LastRun | None) -> Iterator[Metric]:
    if run is None:  # no run has finished yet: no series rather than made-up zeros
        return
    prefix = "billing_reconciliation_last"
    what = "of the last finished subscription reconciliation"
    yield GaugeMetricFamily(
        f"{prefix}_succeeded",
        f"1 if the run {what} succeeded, 0 if it failed.",
        value=int(run.succeeded),
    )
    yield GaugeMetricFamily(f"{prefix}_checked", f"Subscriptions checked {what}.", run.checked)
    yield GaugeMetricFamily(f"{prefix}_drifted", f"Differences found {what}.", run.drifted)
    yield GaugeMetricFamily(f"{prefix}_fixed", f"Differences repaired {what}.", run.fixed)
    if run.finished_at is not None:
        yield GaugeMetricFamily(
            f"{prefix}_finished_timestamp_seconds",
            f"When the run {what} ended (Unix time).",
            value=run.finished_at,
        )


class FleetStateCache:
    """One fleet read at a time per API process, its answer shared for a second: a burst of
    scrapes (or a flood of anyone reaching the unauthenticated route) costs at most one
    database connection per process per second, never one each."""

    def __init__(self, settings: Settings, max_age_seconds: float = FLEET_STATE_MAX_AGE) -> None:
        self._settings = settings
        self._max_age = max_age_seconds
        self._lock = asyncio.Lock()
        self._read_at = -math.inf
        self._state: FleetState | None = None

    async def get(self) -> FleetState | None:
        async with self._lock:
            if time.monotonic() - self._read_at >= self._max_age:
                self._state = await read_fleet_state(self._settings)
                self._read_at = time.monotonic()
            return self._state


def _fleet_cache(request: Request) -> FleetStateCache:
    # Made on first use, inside the app's event loop (the lock belongs to that loop).
    cache: FleetStateCache | None = getattr(request.app.state, "fleet_state_cache", None)
    if cache is None:
        cache = FleetStateCache(request.app.state.settings)
        request.app.state.fleet_state_cache = cache
    return cache


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus exposition; unauthenticated, like every Prometheus target: keep it internal."""
    state = await _fleet_cache(request).get()
    # Off the event loop: merging multiprocess files is CPU work that grows with the number
    # of processes (measured with every series in use: 10 ms for 3 processes' files, 90 ms
    # for 40). In a thread, the loop gets the GIL back every switch interval meanwhile.
    body, content_type = await asyncio.to_thread(
        exposition, request.headers.get("accept"), [FleetCollector(state)]
    )
    return Response(body, media_type=content_type)
