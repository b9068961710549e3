"""One Celery task per handled event type, named `stripe.<type>`, built from the registry.

A message carries one row id, or a batch of row ids of its type (`tasks.events.outbox`
groups the rows it fans out). Each row of a batch is claimed and applied in transactions of
its own, exactly as a single one is, on one database connection for the whole batch; what a
batch hands on (emails, invoice archives) is published once, when it ends
(`tasks.batched_publishing`). On renewal day a message per event cost more in Celery's own
work (the publish, the consumer, the task events, the acknowledgement) than most events'
rules do.

Failures stay per row: a permanent error fails its row (reported to Sentry with the event's
tags) and the batch goes on; a transient one (the database or Stripe gone for a moment) stops
the batch, and that row and the rows after it are retried together, with backoff, in one
message of their own.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import sentry_sdk
from celery import Task
from sqlalchemy.orm import Session

from core import log_context
from core.metrics import ProcessedOutcome
from core.sentry import REPORTED, bind_stripe_event, celery_scopes_are_isolated
from core.settings import get_settings
from db.session import connection_session
from tasks.batched_publishing import batched_publishes
from tasks.celery_app import app
from tasks.context import worker_context
from tasks.events import processing
from tasks.events.processing import Outcome
from tasks.events.registry import HANDLERS, task_name
from tasks.metrics import observe_attempt
from tasks.transient import is_transient, retry_delay

log = logging.getLogger(__name__)

RowIds = int | list[int]


@dataclass(slots=True)
class BatchResult:
    outcomes: dict[int, str] = field(default_factory=dict)
    # The rows a transient error stopped (that row and the ones after it), and the error.
    stopped: list[int] = field(default_factory=list)
    transient: BaseException | None = None
    # The Stripe id of the last row claimed.
    event_id: str | None = None
    # The first permanent failure (its row is `failed`, and it was reported).
    failure: BaseException | None = None


def process_stored_events(task: Task, row_ids: RowIds, *, event_type: str) -> object:
    """Claim each row, apply its handler and settle its status; retry only transient errors.
    The outcome of one row id, or the outcomes by row id of a batch."""
    # Sentry's Celery integration runs each task in an isolation scope of its own and
    # reports what escapes the task from inside it. Without the integration (tasks run with
    # `apply` in tests), a scope of our own keeps the task's tags from reaching the next.
    own_scope = (
        contextlib.nullcontext() if celery_scopes_are_isolated() else sentry_sdk.isolation_scope()
    )
    with own_scope:
        return _process_batch(task, row_ids, event_type=event_type)


def _process_batch(task: Task, row_ids: RowIds, *, event_type: str) -> object:
    batch = [row_ids] if isinstance(row_ids, int) else list(row_ids)
    retries = task.request.retries
    # Drawn before the batch, so that the row a transient error stops is marked with it.
    delay = retry_delay(retries) if retries < task.max_retries else None
    with log_context.bound(event_type=event_type), batched_publishes():
        result = _run_batch(batch, event_type=event_type, retry_in=delay)
    if len(batch) == 1:
        # One event: Celery's own lines for the task (succeeded, retry, raised) and what
        # escapes it to Sentry name it too; the task's context ends at task_postrun.
        bind_stripe_event(event_id=result.event_id, event_type=event_type)
    if result.stopped:
        assert result.transient is not None and delay is not None
        again = result.stopped[0] if isinstance(row_ids, int) else result.stopped
        raise task.retry(args=[again], exc=result.transient, countdown=delay)
    if result.failure is not None:
        # Already reported with its row's tags; Sentry's dedupe drops this one.
        raise result.failure
    return result.outcomes[row_ids] if isinstance(row_ids, int) else result.outcomes


def _run_batch(batch: list[int], *, event_type: str, retry_in: int | None) -> BatchResult:
    """Every row in turn; a transient error stops the batch while retries are left
    (`retry_in`: the seconds until the retry, None when none is left)."""
    result = BatchResult()
    # The claims and work transactions of the whole batch run one after the other on one
    # connection: one pool checkout and one liveness ping per message.
    with connection_session() as session:
        for position, row_id in enumerate(batch):
            with _event_scope(event_type):
                claimed: list[str] = []
                started = time.perf_counter()
                try:
                    outcome = _claim_and_apply(session, row_id, claimed)
                except Exception as exc:
                    result.event_id = claimed[0] if claimed else result.event_id
                    retried = is_transient(exc) and retry_in is not None
                    if claimed:
                        observe_attempt(
                            event_type,
                            ProcessedOutcome.RETRIED if retried else ProcessedOutcome.FAILED,
                            time.perf_counter() - started,
                        )
                    if retried:
                        result.stopped, result.transient = batch[position:], exc
                        log.warning(
                            "event row %s (and %d after it): transient error, retry in %ss: %s",
                            row_id,
                            len(batch) - position - 1,
                            retry_in,
                            exc,
                        )
                        if claimed:  # the rows after it were never claimed: still `queued`
                            processing.mark_retrying(
                                row_id=row_id, error=exc, delay_seconds=retry_in
                            )
                        return result
                    result.outcomes[row_id] = "failed"
                    result.failure = result.failure or exc
                    if claimed:
                        _fail(row_id, exc)
                    else:  # out of retries before its claim: untouched, left to the sweep
                        log.error("event row %s not claimed: %s", row_id, exc)
                else:
                    result.outcomes[row_id] = outcome
                    result.event_id = claimed[0] if claimed else result.event_id
                    observe_attempt(event_type, _counted(outcome), time.perf_counter() - started)
    return result


def _counted(outcome: Outcome) -> ProcessedOutcome:
    if outcome == Outcome.PROCESSED:
        return ProcessedOutcome.PROCESSED
    if outcome == Outcome.IGNORED:
        return ProcessedOutcome.IGNORED
    return ProcessedOutcome.SKIPPED  # skipped, or superseded by a later claim


@contextlib.contextmanager
def _event_scope(event_type: str) -> Iterator[None]:
    """Each row's Sentry tags and log fields, gone when the row is done (a scope forked from
    the task's)."""
    with sentry_sdk.isolation_scope(), log_context.bound():
        bind_stripe_event(event_type=event_type)
        yield


def _claim_and_apply(session: Session, row_id: int, claimed: list[str]) -> Outcome:
    """The row's outcome; `claimed` gets the row's Stripe event id once it is claimed."""
    with session.begin():
        claim = processing.claim(session, row_id=row_id)
    if claim is None:
        return Outcome.SKIPPED
    claimed.append(claim.stripe_event_id)
    bind_stripe_event(event_id=claim.stripe_event_id, event_type=claim.event_type)
    return processing.apply(claim, ctx=worker_context(), session=session)


def _fail(row_id: int, exc: BaseException) -> None:
    """Fail the row with its error and report it (inside the row's scope when there is one)."""
    log.error("event row %s failed: %s", row_id, processing.describe(exc), extra=REPORTED)
    processing.mark_failed(row_id=row_id, error=exc)
    sentry_sdk.capture_exception(exc)


def _register(event_type: str) -> Task:
    def run(self: Task, row_ids: RowIds) -> object:
        return process_stored_events(self, row_ids, event_type=event_type)

    run.__name__ = run.__qualname__ = "handle_" + event_type.replace(".", "_")
    run.__doc__ = (
        f"Process stored `{event_type}` events: one webhook_events row id, or a batch of them."
    )
    return app.task(
        run, bind=True, name=task_name(event_type), max_retries=get_settings().task_max_retries
    )


EVENT_TASKS: dict[str, Task] = {event_type: _register(event_type) for event_type in HANDLERS}
