"""The worker's metrics: every attempt at an event (each row of a `stripe.<type>` message)
timed and counted, and with WORKER_METRICS_PORT an HTTP server for Prometheus.

Tasks run in prefork pool processes while only the main process can serve one port, so
the server always reads multiprocess files (see `core.metrics`): those of
PROMETHEUS_MULTIPROC_DIR when it is set, else of a directory private to this worker, made
before the pool forks and removed when the worker exits. The server starts once the pool
runs (`worker_ready`), so no pool process inherits its socket.

Loaded in the worker through the Celery app's `include` list; `tasks.events.processing`
imports it for `observe_end_to_end`.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from datetime import UTC, datetime
from typing import Any

from celery import signals
from prometheus_client import CollectorRegistry, start_http_server, values
from prometheus_client.multiprocess import mark_process_dead
from sqlalchemy.orm import Session

from core.metrics import (
    EMAILS,
    EVENT_END_TO_END_SECONDS,
    EVENT_PROCESSING_SECONDS,
    EVENTS_PROCESSED,
    EVENTS_UNPROVEN_API_VERSION,
    MULTIPROC_DIR_VARIABLE,
    OTHER,
    EmailOutcome,
    ProcessedOutcome,
    SharedFilesCollector,
    email_templates,
    multiprocess_dir,
)
from core.settings import get_settings
from core.stripe_versions import unproven_standing
from db.after_commit import after_commit
from tasks.events.registry import HANDLERS

log = logging.getLogger(__name__)


@signals.celeryd_init.connect
def _prepare_metrics(**_: Any) -> None:
    # In the main process, before the pool forks: the pool processes inherit what is set here.
    if get_settings().worker_metrics_port and not multiprocess_dir():
        _use_private_multiprocess_dir()
    # Every series exists from the start at 0, so that a rate sees the first of each kind.
    for event_type in HANDLERS:
        for outcome in ProcessedOutcome:
            EVENTS_PROCESSED.labels(event_type, outcome)
    for template in email_templates():
        for email_outcome in EmailOutcome:
            EMAILS.labels(template, email_outcome)


def _use_private_multiprocess_dir() -> None:
    path = tempfile.mkdtemp(prefix="billing-worker-metrics-")
    os.environ[MULTIPROC_DIR_VARIABLE] = path
    # prometheus_client chose its value class when it was imported, from the environment;
    # choose again. No value exists yet (every instrument has labels, and none was used), so
    # every value from now on, in this process and the pool's, is written to `path`.
    values.ValueClass = values.MultiProcessValue()
    # The main process only: pool processes leave through os._exit, past atexit.
    atexit.register(shutil.rmtree, path, ignore_errors=True)


@signals.worker_ready.connect
def _serve_metrics(**_: Any) -> None:
    port = get_settings().worker_metrics_port
    path = multiprocess_dir()
    if not port or not path:
        return
    registry = CollectorRegistry()
    registry.register(SharedFilesCollector(path))
    try:
        start_http_server(port, registry=registry)
    except OSError as exc:  # the port is taken: the worker still works, unobserved
        log.error("worker metrics not served on port %s: %s", port, exc)
        return
    log.info("worker metrics on port %s, directory %s", port, path)


@signals.worker_process_shutdown.connect
def _forget_process(pid: int, **_: Any) -> None:
    # Removes only per-process (`live*`) gauge files, which no instrument uses today; counts
    # of the exiting process must stay in the sums.
    path = multiprocess_dir()
    if path:
        mark_process_dead(pid, path)


def observe_attempt(event_type: str, outcome: ProcessedOutcome, seconds: float) -> None:
    """Count one row's attempt (`tasks.events.tasks`, one per row of a batch) and time it."""
    label = event_type if event_type in HANDLERS else OTHER
    # A skipped attempt ran no handler; its few milliseconds would only blur the histogram.
    if outcome is not ProcessedOutcome.SKIPPED:
        EVENT_PROCESSING_SECONDS.labels(label).observe(seconds)
    EVENTS_PROCESSED.labels(label, outcome).inc()


def observe_end_to_end(session: Session, *, event_type: str, received_at: datetime) -> None:
    """Observe the time from storing to processing this event once `session` commits it
    processed (a rollback observes nothing). The worker's clock against the database's
    `received_at`: a skew between them shows here, never as a negative time."""
    label = event_type if event_type in HANDLERS else OTHER

    def observe() -> None:
        elapsed = (datetime.now(UTC) - received_at).total_seconds()
        EVENT_END_TO_END_SECONDS.labels(label).observe(max(0.0, elapsed))

    after_commit(session, observe)


def count_unproven_api_version(
    session: Session, *, event_type: str, api_version: str | None
) -> None:
    """Count (once `session` commits) and log an event whose API version the fixtures do not
    prove: it is processed all the same, but its shape is one no test has read."""
    standing = unproven_standing(api_version)
    if standing is None:
        return
    label = event_type if event_type in HANDLERS else OTHER
    where = {"older": "older than", "newer": "newer than"}.get(standing, "not comparable with")
    log.warning(
        "%s event in API version %r, %s the versions the fixtures prove",
        event_type,
        api_version,
        where,
    )

    after_commit(session, EVENTS_UNPROVEN_API_VERSION.labels(label, standing.value).inc)
