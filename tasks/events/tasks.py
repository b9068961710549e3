"""One Celery task per handled event type, named `stripe.<type>`, built from the registry.

A message carries one row id, or a batch of row ids of its type (`tasks.events.outbox`
groups the rows it fans out). The batch's rows are claimed in one statement, then applied in
one work transaction: each row locked and checked, its handler run, its status set, and one
commit (one WAL flush) for them all. Effects and statuses still commit together; a crash
leaves the whole batch to be claimed again. What a batch hands on (emails, invoice archives)
is published once, after it (`tasks.batched_publishing`). On renewal day a message, a claim
and a commit per event cost more than most events' rules do.

Failures stay per row. When a handler fails, the transaction is rolled back, that row is
settled on its own (a transient error puts it back to `queued` for a retry with backoff, in
a message of its own; any other error fails it and reports it to Sentry with the event's
tags), and the other rows are applied again without it. The customers' locks are taken in
customer order, the same in every batch, so batches that share customers never deadlock.
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
from tasks.events.processing import Claim, Outcome
from tasks.events.registry import HANDLERS, task_name
from tasks.metrics import observe_attempt
from tasks.transient import is_transient, retry_delay

log = logging.getLogger(__name__)

RowIds = int | list[int]
# Events per work transaction (see `_run_batch`).
EVENTS_PER_COMMIT = 5


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
    """Claim the rows, apply them in one work transaction, settle the ones that failed.
    `retry_in`: the seconds until a retry of rows a transient error stopped; None when no
    retry is left (they fail)."""
    result = BatchResult()
    # The claim and the work transaction run one after the other on one connection: one
    # pool checkout and one liveness ping per message.
    with connection_session() as session:
        try:
            with session.begin():
                claims = processing.claim_rows(session, row_ids=batch)
        except Exception as exc:  # nothing was claimed: the message again, or the sweep
            if is_transient(exc) and retry_in is not None:
                log.warning(
                    "event rows %s: transient error, retry in %ss: %s", batch, retry_in, exc
                )
                result.stopped, result.transient = list(batch), exc
            else:
                log.error("event rows %s not claimed: %s", batch, exc)
                result.failure = exc
            return result
        claimed = {claim.row_id for claim in claims}
        for row_id in batch:
            if row_id not in claimed:  # another delivery holds it, or it is done
                result.outcomes[row_id] = Outcome.SKIPPED
                observe_attempt(event_type, ProcessedOutcome.SKIPPED, 0.0)
        # Every transaction takes its customers' locks in the same order (a customer's events
        # in the order they were stored), so that two batches sharing customers wait for one
        # another instead of deadlocking; and commits every EVENTS_PER_COMMIT events, so that
        # the other process's batch of the same customers (the next event type of the same
        # renewals, say) waits for a few events' work, not for a whole batch's.
        ordered = sorted(claims, key=lambda c: (c.event.customer_id or "", c.row_id))
        for start in range(0, len(ordered), EVENTS_PER_COMMIT):
            end = start + EVENTS_PER_COMMIT
            unsettled = _apply_chunk(
                session, ordered[start:end], event_type=event_type, retry_in=retry_in, result=result
            )
            if unsettled is not None:  # a commit failed: they and the rest wait for the retry
                claims_left, error = unsettled
                _stop_all(claims_left + ordered[end:], error, retry_in=retry_in, result=result)
                break
    return result


def _apply_chunk(
    session: Session,
    chunk: list[Claim],
    *,
    event_type: str,
    retry_in: int | None,
    result: BatchResult,
) -> tuple[list[Claim], BaseException] | None:
    """Apply the claims in one transaction, settling each that fails on its own and applying
    the others again without it. None once done; when the commit itself failed, the claims
    it held and its error."""
    pending = list(chunk)
    while pending:
        stopped = _apply_together(session, pending, event_type=event_type, result=result)
        if stopped is None:
            return None
        position, error = stopped
        if position is None:  # the commit failed: nothing of the transaction is done
            return pending, error
        claim = pending.pop(position)
        with _event_scope(event_type):
            bind_stripe_event(event_id=claim.stripe_event_id)
            _settle_failure(claim, error, event_type=event_type, retry_in=retry_in, result=result)
    return None


class _Failed(Exception):
    """Leaves the work transaction (rolling it back) when one event's handler failed."""


def _apply_together(
    session: Session, claims: list[Claim], *, event_type: str, result: BatchResult
) -> tuple[int | None, BaseException] | None:
    """Apply the claims in one transaction: one commit (and one WAL flush) for them all.
    None once committed; else the position of the claim that failed (None when the commit
    did) and its error, with the whole transaction rolled back: the caller settles that
    one and applies the others again."""
    done: list[tuple[Claim, Outcome, float]] = []
    failed: tuple[int | None, BaseException] | None = None
    try:
        with session.begin():
            ctx = worker_context()
            # The chunk's customers and rows locked in two statements, and its rows settled
            # in one, rather than two statements for each event.
            chunk = processing.lock_chunk(session, claims, ctx=ctx)
            for position, claim in enumerate(claims):
                with _event_scope(event_type):
                    bind_stripe_event(event_id=claim.stripe_event_id)
                    started = time.perf_counter()
                    try:
                        outcome = processing.apply_in(session, claim, ctx=ctx, chunk=chunk)
                    except Exception as exc:
                        failed = (position, exc)
                        raise _Failed from exc
                    done.append((claim, outcome, time.perf_counter() - started))
            processing.settle_chunk(session, chunk)
    except _Failed:
        return failed
    except Exception as exc:  # the commit
        return None, exc
    for claim, outcome, seconds in done:
        result.outcomes[claim.row_id] = outcome
        result.event_id = claim.stripe_event_id
        observe_attempt(event_type, _counted(outcome), seconds)
    return None


def _settle_failure(
    claim: Claim,
    error: BaseException,
    *,
    event_type: str,
    retry_in: int | None,
    result: BatchResult,
) -> None:
    """One event's failure: back to `queued` for the retry when it is transient and retries
    are left, else `failed` and reported."""
    result.event_id = claim.stripe_event_id
    if is_transient(error) and retry_in is not None:
        log.warning(
            "event row %s: transient error, retry in %ss: %s", claim.row_id, retry_in, error
        )
        observe_attempt(event_type, ProcessedOutcome.RETRIED, 0.0)
        result.stopped.append(claim.row_id)
        result.transient = result.transient or error
        with contextlib.suppress(Exception):  # the database is gone: the retry claims it anyway
            processing.mark_retrying(row_id=claim.row_id, error=error, delay_seconds=retry_in)
        return
    observe_attempt(event_type, ProcessedOutcome.FAILED, 0.0)
    result.outcomes[claim.row_id] = "failed"
    result.failure = result.failure or error
    _fail(claim.row_id, error)


def _stop_all(
    claims: list[Claim], error: BaseException, *, retry_in: int | None, result: BatchResult
) -> None:
    """A work transaction's commit failed: its claims, and those of the batch not yet
    applied, are retried (or, with no retry left, left `processing` for the sweep)."""
    rows = [claim.row_id for claim in claims]
    if is_transient(error) and retry_in is not None:
        log.warning("event rows %s: commit failed, retry in %ss: %s", rows, retry_in, error)
        result.stopped += rows
        result.transient = result.transient or error
        return
    log.error("event rows %s: commit failed: %s", rows, error, extra=REPORTED)
    sentry_sdk.capture_exception(error)
    result.failure = result.failure or error


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
