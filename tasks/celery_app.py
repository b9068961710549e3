"""The Celery app: Redis broker, late acknowledgement, JSON only, bounded task time."""

from __future__ import annotations

import logging

from celery import Celery, Task, signals
from celery.schedules import crontab

from core import log_context
from core.log_setup import configure_logging
from core.sentry import bind_stripe_event, celery_scopes_are_isolated, init_sentry
from core.settings import Settings, get_settings

WEBHOOKS_QUEUE = "webhooks"
EMAILS_QUEUE = "emails"
MAINTENANCE_QUEUE = "maintenance"
ALL_QUEUES = (WEBHOOKS_QUEUE, EMAILS_QUEUE, MAINTENANCE_QUEUE)

# Kept short so that a broker outage fails a publish in about a second: the API then leaves
# the row `received` for the sweep instead of holding anything up.
BROKER_CONNECT_TIMEOUT_SECONDS = 1


def configure(app: Celery, settings: Settings) -> None:
    transport_options = _transport_options(settings)
    app.conf.update(
        broker_url=settings.redis_url,
        result_backend=settings.redis_url,
        broker_transport_options=transport_options,
        result_backend_transport_options=transport_options,
        broker_connection_timeout=BROKER_CONNECT_TIMEOUT_SECONDS,
        broker_connection_retry_on_startup=True,
        # State lives in PostgreSQL; nobody reads task results.
        task_ignore_result=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # A task is acknowledged after it ran, and given back if its process dies, so a crash
        # never swallows a message; handlers are idempotent, so a rerun is harmless.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=300,
        task_soft_time_limit=240,
        worker_send_task_events=True,
        # No `task-sent` event per publish: on renewal day that is a second Redis round trip
        # for every event the batch task fans out and every email. Flower shows each task
        # from the worker's `task-received` on, as it always did for the API's batches.
        task_send_sent_event=False,
        task_default_queue=WEBHOOKS_QUEUE,
        task_routes={
            "stripe.*": {"queue": WEBHOOKS_QUEUE},
            "billing.enqueue_stored_events": {"queue": WEBHOOKS_QUEUE},
            "emails.*": {"queue": EMAILS_QUEUE},
            "billing.*": {"queue": MAINTENANCE_QUEUE},
        },
        beat_schedule=_beat_schedule(settings),
        timezone="UTC",
        enable_utc=True,
    )


def _transport_options(settings: Settings) -> dict[str, object]:
    options: dict[str, object] = {
        # Redis redelivers an unacknowledged message after this long; the sweep recovers a
        # killed worker's events much sooner (SWEEP_STALE_AFTER_SECONDS).
        "visibility_timeout": 3600,
        "socket_connect_timeout": BROKER_CONNECT_TIMEOUT_SECONDS,
        "max_retries": 1,
    }
    if settings.broker_key_prefix:
        options["global_keyprefix"] = settings.broker_key_prefix
    return options


def _beat_schedule(settings: Settings) -> dict[str, dict[str, object]]:
    """The periodic jobs: the sweeps every few seconds, the reminders and the reconciliation
    once a day."""
    return {
        "sweep-unprocessed-events": {
            "task": "billing.sweep_unprocessed_events",
            "schedule": float(settings.sweep_interval_seconds),
        },
        "sweep-pending-emails": {
            "task": "emails.sweep_pending",
            "schedule": float(settings.sweep_interval_seconds),
        },
        "remind-dispute-evidence": {
            "task": "billing.remind_dispute_evidence",
            "schedule": _daily_at(settings.dispute_reminders_at),
        },
        "check-dispute-ratios": {
            "task": "billing.check_dispute_ratios",
            "schedule": _daily_at(settings.dispute_ratios_at),
        },
        "reconcile-subscriptions": {
            "task": "billing.reconcile_subscriptions",
            "schedule": _daily_at(settings.reconcile_at),
        },
    }


def _daily_at(hh_mm: str) -> crontab:
    hour, minute = hh_mm.split(":")
    return crontab(hour=int(hour), minute=int(minute))


def publisher_app(settings: Settings) -> Celery:
    """A Celery app that only sends (the API's), configured from the given settings."""
    publisher = Celery("billing-publisher")
    configure(publisher, settings)
    return publisher


app = Celery(
    "billing",
    include=[
        "tasks.events.tasks",
        "tasks.events.outbox",
        "tasks.emails",
        "tasks.dispute_reminders",
        "tasks.dispute_ratios",
        "tasks.reconciliation.task",
        "tasks.invoice_archive",
        "tasks.metrics",
    ],
)
configure(app, get_settings())


# --- Signals: Sentry, logging, and the log context of each task -----------------------

# The message headers that carry the Stripe event on to the tasks its processing sends
# (its emails), so their lines name the event too.
_EVENT_HEADERS = {
    log_context.EVENT_ID: "billing_event_id",
    log_context.EVENT_TYPE: "billing_event_type",
}


@signals.celeryd_init.connect
def _init_worker_observability(instance: object = None, **_: object) -> None:
    settings = get_settings()
    # Already now, not only at setup_logging: the worker warns (running as root, say)
    # before Celery sets logging up, and those lines must come out in the format too.
    configure_logging(settings)
    # Before the pool forks, as Sentry's Celery integration asks.
    init_sentry(settings, component="worker")
    if settings.log_format == "json" and instance is not None:
        # What `--quiet` does: no banner, so that every line of the output is one JSON object
        # (the same facts are logged: the queues, the tasks, "ready").
        instance.quiet = True  # type: ignore[attr-defined]


@signals.beat_init.connect
def _init_beat_sentry(**_: object) -> None:
    init_sentry(get_settings(), component="beat")


@signals.setup_logging.connect
def _setup_logging(loglevel: int | None = None, **_: object) -> None:
    # Connected at all, this signal stops Celery from installing its own root handler (and
    # from redirecting stdout into it): the worker and beat log as the API does.
    configure_logging(get_settings(), level=loglevel or logging.INFO)


@signals.before_task_publish.connect
def _pass_event_on(headers: dict[str, object] | None = None, **_: object) -> None:
    if headers is None:
        return
    bound = log_context.current()
    for field, header in _EVENT_HEADERS.items():
        if field in bound:
            headers.setdefault(header, bound[field])


@signals.task_prerun.connect
def _bind_task(task_id: str | None = None, task: Task | None = None, **_: object) -> None:
    # Replaces whatever an earlier task of this process left; `stripe.<type>` tasks add
    # their event once they know it (tasks.events.tasks).
    if task is None:
        return
    log_context.replace(task_id=task_id, task_name=task.name)
    inherited = {
        field: value
        for field, header in _EVENT_HEADERS.items()
        if isinstance(value := getattr(task.request, header, None), str)
    }
    if not inherited:
        return
    if celery_scopes_are_isolated():
        # The integration gave this task its own isolation scope: the tags end with it.
        bind_stripe_event(**inherited)
    else:
        log_context.bind(**inherited)


@signals.task_postrun.connect
def _unbind_task(**_: object) -> None:
    # After Celery's own "succeeded", "retry" and "raised" lines, which are part of the
    # event's processing too.
    log_context.clear()
