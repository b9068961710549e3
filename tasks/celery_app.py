"""The Celery app: Redis broker, late acknowledgement, JSON only, bounded task time."""

from __future__ import annotations

from celery import Celery, signals
from celery.schedules import crontab

from core.observability import init_sentry
from core.settings import Settings, get_settings

WEBHOOKS_QUEUE = "webhooks"
EMAILS_QUEUE = "emails"
MAINTENANCE_QUEUE = "maintenance"
ALL_QUEUES = (WEBHOOKS_QUEUE, EMAILS_QUEUE, MAINTENANCE_QUEUE)

# Kept short so that a broker outage fails a publish in about a second: the API then leaves
# the row `received` for the sweep instead of holding anything up.
BROKER_CONNECT_TIMEOUT_SECONDS = 1


def configure(app: Celery, settings: Settings) -> None:
    transport_options: dict[str, object] = {
        # Redis redelivers an unacknowledged message after this long; the sweep recovers a
        # killed worker's events much sooner (SWEEP_STALE_AFTER_SECONDS).
        "visibility_timeout": 3600,
        "socket_connect_timeout": BROKER_CONNECT_TIMEOUT_SECONDS,
        "max_retries": 1,
    }
    if settings.broker_key_prefix:
        transport_options["global_keyprefix"] = settings.broker_key_prefix
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
        task_send_sent_event=True,
        task_default_queue=WEBHOOKS_QUEUE,
        task_routes={
            "stripe.*": {"queue": WEBHOOKS_QUEUE},
            "billing.enqueue_stored_events": {"queue": WEBHOOKS_QUEUE},
            "emails.*": {"queue": EMAILS_QUEUE},
            "billing.*": {"queue": MAINTENANCE_QUEUE},
        },
        beat_schedule={
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
            "reconcile-subscriptions": {
                "task": "billing.reconcile_subscriptions",
                "schedule": _daily_at(settings.reconcile_at),
            },
        },
        timezone="UTC",
        enable_utc=True,
    )


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
        "tasks.reconciliation.task",
    ],
)
configure(app, get_settings())


@signals.celeryd_init.connect
def _init_worker_sentry(**_: object) -> None:
    # Before the pool forks, as Sentry's Celery integration asks.
    init_sentry(get_settings(), component="worker")


@signals.beat_init.connect
def _init_beat_sentry(**_: object) -> None:
    init_sentry(get_settings(), component="beat")
