"""One Celery task per handled event type, named `stripe.<type>`, built from the registry."""

from __future__ import annotations

import contextlib
import logging

import sentry_sdk
from celery import Task
from sqlalchemy.orm import Session

from core.sentry import REPORTED, bind_stripe_event, celery_scopes_are_isolated
from core.settings import get_settings
from db.session import connection_session
from tasks.celery_app import app
from tasks.context import worker_context
from tasks.events import processing
from tasks.events.processing import Outcome
from tasks.events.registry import HANDLERS, task_name
from tasks.transient import is_transient, retry_delay

log = logging.getLogger(__name__)


def process_stored_event(task: Task, row_id: int, *, event_type: str) -> str:
    """Claim the row, apply its handler, and settle its status; retry only transient errors."""
    # Sentry's Celery integration runs each task in an isolation scope of its own and
    # reports what escapes the task from inside it: tags set on that scope reach those
    # reports too (a failing claim, say). Without the integration (tasks run with `apply`
    # in tests), a scope of our own keeps the event's tags from reaching the next task.
    own_scope = (
        contextlib.nullcontext() if celery_scopes_are_isolated() else sentry_sdk.isolation_scope()
    )
    with own_scope:
        # The log context, unlike the scope, stays bound until the task_postrun signal, so
        # that Celery's own retry and failure lines name the event as well.
        bind_stripe_event(event_type=event_type)
        return _process(task, row_id)


def _process(task: Task, row_id: int) -> str:
    # The claim and the work transaction run one after the other on one connection.
    with connection_session() as session:
        return _claim_and_apply(task, session, row_id)


def _claim_and_apply(task: Task, session: Session, row_id: int) -> str:
    try:
        with session.begin():
            claim = processing.claim(session, row_id=row_id)
    except Exception as exc:
        if is_transient(exc) and task.request.retries < task.max_retries:
            raise task.retry(exc=exc, countdown=retry_delay(task.request.retries)) from exc
        raise  # the row is untouched; the sweep will offer it again
    if claim is None:
        return Outcome.SKIPPED
    bind_stripe_event(event_id=claim.stripe_event_id, event_type=claim.event_type)
    try:
        return processing.apply(
            row_id=row_id, attempt=claim.attempt, ctx=worker_context(), session=session
        )
    except Exception as exc:
        if is_transient(exc) and task.request.retries < task.max_retries:
            delay = retry_delay(task.request.retries)
            log.warning("event row %s: transient error, retry in %ss: %s", row_id, delay, exc)
            processing.mark_retrying(row_id=row_id, error=exc, delay_seconds=delay)
            raise task.retry(exc=exc, countdown=delay) from exc
        # Reported below with its traceback; the line must not become a second report.
        log.error("event row %s failed: %s", row_id, processing.describe(exc), extra=REPORTED)
        processing.mark_failed(row_id=row_id, error=exc)
        sentry_sdk.capture_exception(exc)
        raise


def _register(event_type: str) -> Task:
    def run(self: Task, row_id: int) -> str:
        return process_stored_event(self, row_id, event_type=event_type)

    run.__name__ = run.__qualname__ = "handle_" + event_type.replace(".", "_")
    run.__doc__ = f"Process one stored `{event_type}` event by its webhook_events row id."
    return app.task(
        run, bind=True, name=task_name(event_type), max_retries=get_settings().task_max_retries
    )


EVENT_TASKS: dict[str, Task] = {event_type: _register(event_type) for event_type in HANDLERS}
