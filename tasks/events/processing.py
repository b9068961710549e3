"""Run one stored event through its billing function: claim, one transaction, final status.

A claim is committed first (status `processing`, attempts + 1), so the admin API and the
sweep can see it. The work transaction then locks the row and checks that the claim is still
this attempt's; the handler's effects and `processed` commit together, so a crash at any
point leaves either nothing or everything. A dead worker's row lock dies with its connection,
which is why a claim needs no lease: the next delivery, or the sweep, simply claims again.

The claim is one statement, and its commit does not wait for the WAL to reach the disk
(`synchronous_commit` off for that transaction only): a claim lost in a database crash is a
row back to pending, which the sweep offers again, and the work transaction's own
(synchronous) commit flushes the claim's WAL before it, so a processed row never lacks its
claim. A synchronous claim would add a WAL flush, a wait of its own, to every event.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from billing.context import BillingContext
from billing.events import StripeEvent, foreign_event_reason
from billing.registry import HANDLERS
from db.locks import lock_customer
from db.models import PENDING_STATUSES, EventStatus, WebhookEvent
from db.session import new_session, transaction
from tasks.metrics import count_unproven_api_version, observe_end_to_end

log = logging.getLogger(__name__)

MAX_ERROR_LENGTH = 2000


class Outcome(StrEnum):
    PROCESSED = "processed"
    IGNORED = "ignored"
    SKIPPED = "skipped"  # another delivery holds it, or it is already done
    SUPERSEDED = "superseded"  # a later claim took it over between our claim and our lock


@dataclass(frozen=True, slots=True)
class Claim:
    attempt: int
    event_type: str
    stripe_event_id: str


def claim(session: Session, *, row_id: int) -> Claim | None:
    """Mark a pending row `processing` for this attempt; None if it is locked or not pending.

    One round trip: the row is locked (never waited for) and updated by the same statement,
    which also turns the transaction's synchronous commit off (see the module's doc)."""
    pending = (
        select(WebhookEvent.id)
        .where(WebhookEvent.id == row_id, WebhookEvent.status.in_(PENDING_STATUSES))
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    row = session.execute(
        update(WebhookEvent)
        .where(
            WebhookEvent.id == pending,
            func.set_config("synchronous_commit", "off", True).is_not(None),
        )
        .values(
            status=EventStatus.PROCESSING,
            attempts=WebhookEvent.attempts + 1,
            claimed_at=func.now(),
        )
        .returning(WebhookEvent.attempts, WebhookEvent.type, WebhookEvent.stripe_event_id)
        .execution_options(synchronize_session=False)
    ).one_or_none()
    if row is None:
        return None
    return Claim(attempt=row.attempts, event_type=row.type, stripe_event_id=row.stripe_event_id)


def apply(
    *, row_id: int, attempt: int, ctx: BillingContext, session: Session | None = None
) -> Outcome:
    """Run the registry's billing function and mark the row processed, in one transaction,
    under the customer's lock. With `session` (outside any transaction), on that session's
    connection; else on a new one."""
    own = contextlib.nullcontext(session) if session is not None else new_session()
    with own as work, work.begin():
        return _apply(work, row_id=row_id, attempt=attempt, ctx=ctx)


def _apply(session: Session, *, row_id: int, attempt: int, ctx: BillingContext) -> Outcome:
    row = session.execute(
        select(WebhookEvent).where(WebhookEvent.id == row_id).with_for_update()
    ).scalar_one()
    if row.status != EventStatus.PROCESSING or row.attempts != attempt:
        return Outcome.SUPERSEDED
    handler = HANDLERS.get(row.type)
    foreign = foreign_event_reason(
        livemode=row.livemode, account=row.account, live=not ctx.settings.stripe_test_mode
    )
    if foreign is not None:  # stored before the endpoint refused such events, say
        row.status = EventStatus.IGNORED
        row.processed_at = func.now()
        row.last_error = foreign
        return Outcome.IGNORED
    if handler is not None:
        event = StripeEvent.from_row(row)
        if event.customer_id:
            lock_customer(session, event.customer_id)
        handler(session, ctx, event)
        count_unproven_api_version(session, event_type=event.type, api_version=event.api_version)
        log.info("handled %s %s object=%s", event.type, event.id, event.object.get("id"))
    row.status = EventStatus.PROCESSED if handler else EventStatus.IGNORED
    row.processed_at = func.now()
    observe_end_to_end(session, event_type=row.type, received_at=row.received_at)
    row.last_error = None
    return Outcome.PROCESSED if handler else Outcome.IGNORED


def mark_retrying(*, row_id: int, error: BaseException, delay_seconds: float) -> None:
    """Back to `queued` until the retry is due; the sweep leaves it alone until then."""
    with transaction() as session:
        session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id == row_id, WebhookEvent.status == EventStatus.PROCESSING)
            .values(
                status=EventStatus.QUEUED,
                last_error=describe(error),
                enqueued_at=func.now() + text(f"interval '{int(delay_seconds)} seconds'"),
            )
        )


def mark_failed(*, row_id: int, error: BaseException) -> None:
    with transaction() as session:
        session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id == row_id, WebhookEvent.status == EventStatus.PROCESSING)
            .values(status=EventStatus.FAILED, last_error=describe(error))
        )


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:MAX_ERROR_LENGTH]
