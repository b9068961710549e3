"""The Celery app: Redis or RabbitMQ broker, late acknowledgement, JSON only, bounded task time.

On RabbitMQ the queues are quorum queues (replicated, durable, what Celery and RabbitMQ
recommend for work that must not be lost) and every publish waits for the broker's
confirmation, so a publish that returned is a message the broker holds. With late
acknowledgement, a message is removed only after its task ran.
"""

from __future__ import annotations

import logging

from celery import Celery, Task, signals
from celery.schedules import crontab
from kombu import Exchange, Queue

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
    redis_options = _redis_transport_options(settings)
    app.conf.update(
        broker_url=settings.celery_broker_url,
        result_backend=settings.redis_url,
        broker_transport_options=(
            _rabbitmq_transport_options() if settings.broker_is_rabbitmq else redis_options
        ),
        result_backend_transport_options=redis_options,
        task_queues=_queues(rabbitmq=settings.broker_is_rabbitmq),
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


def _queues(*, rabbitmq: bool) -> list[Queue]:
    """The platform's queues, each on an exchange of its name with its name as routing key.

    On RabbitMQ they are quorum queues on topic exchanges: a quorum queue has no per-message
    delay, so Celery sends a retry's countdown through RabbitMQ's native delayed delivery
    (a chain of dead-lettering queues), which binds only to topic or fanout exchanges; on a
    direct exchange a retry would wait inside the worker, holding its process.
    """
    if not rabbitmq:
        return [Queue(name, Exchange(name, type="direct"), routing_key=name) for name in ALL_QUEUES]
    return [
        Queue(
            name,
            Exchange(name, type="topic"),
            routing_key=name,
            queue_arguments={"x-queue-type": "quorum"},
        )
        for name in ALL_QUEUES
    ]


def _rabbitmq_transport_options() -> dict[str, object]:
    # Publisher confirms: basic_publish returns once RabbitMQ has the message (on a quorum
    # queue: once a majority of its replicas wrote it), so an outbox row is marked `queued`
    # only for a message that exists; a publish the broker refused raises, and the sweep
    # publishes the row again.
    # One connection attempt per publish, as on Redis: kombu's default is to retry forever.
    return {"confirm_publish": True, "confirm_timeout": 5.0, "max_retries": 1}


def _redis_transport_options(settings: Settings) -> dict[str, object]:
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
        "maintain-event-partitions": {
            "task": "billing.maintain_event_partitions",
            "schedule": _daily_at(settings.reconcile_at),
        },
        "archive-event-months": {
            "task": "billing.archive_event_months",
            "schedule": _daily_at(settings.reconcile_at),
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
        "tasks.events.partitions",
        "tasks.events.archive",
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
