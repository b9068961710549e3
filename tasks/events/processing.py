"""Run stored events through their billing functions: claim, work transaction, final status.

A claim is committed first (status `processing`, attempts + 1), so the admin API and the
sweep can see it. The work transaction then locks each row and checks that the claim is
still this attempt's; the handler's effects and `processed` commit together, so a crash at
any point leaves either nothing or everything. A dead worker's row lock dies with its
connection, which is why a claim needs no lease: the next delivery, or the sweep, simply
claims again. `tasks.events.tasks` claims a batch's rows in one statement and applies them
in one work transaction (`apply_in`); `apply` is the same for one claim.

The claim is one statement, and its commit does not wait for the WAL to reach the disk
(`synchronous_commit` off for that transaction only): a claim lost in a database crash is a
row back to pending, which the sweep offers again, and the work transaction's own
(synchronous) commit flushes the claim's WAL before it, so a processed row never lacks its
claim. A synchronous claim would add a WAL flush, a wait of its own, to every event.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ARRAY, BigInteger, any_, bindparam, func, select, text, update
from sqlalchemy.orm import Session

from billing.context import BillingContext
from billing.events import StripeEvent, foreign_event_reason
from billing.registry import HANDLERS
from db.after_commit import after_commit
from db.locks import lock_customers
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
    """A claimed row: this attempt's number, and the event as the rules see it (the claim
    returns the row, so the work transaction need not read it again)."""

    attempt: int
    event: StripeEvent
    received_at: datetime

    @property
    def row_id(self) -> int:
        return self.event.row_id

    @property
    def event_type(self) -> str:
        return self.event.type

    @property
    def stripe_event_id(self) -> str:
        return self.event.id


# The statements every event runs, built once: SQLAlchemy keeps a statement's cache key, so
# one used again is neither built nor keyed again; built per call, they cost the worker more
# CPU than PostgreSQL took to run them (docs/decisions/0007). They are written on the table,
# not the mapped class: they load no objects, and a statement of the mapped class goes
# through the ORM's DML and loading layers (about 150 µs more a statement, decision 0007).
_EVENTS = WebhookEvent.__table__.c
# A chunk's rows, after its customers (`db.locks.lock_customers`).
_LOCK_ROWS = (
    select(_EVENTS.id, _EVENTS.status, _EVENTS.attempts)
    .where(_EVENTS.id == any_(bindparam("row_ids", type_=ARRAY(BigInteger))))
    .with_for_update(of=WebhookEvent.__table__)
)
_SETTLE_ROWS = (
    update(WebhookEvent.__table__)
    .where(_EVENTS.id == any_(bindparam("row_ids", type_=ARRAY(BigInteger))))
    .values(status=bindparam("new_status"), processed_at=func.now(), last_error=None)
)
# `= ANY(ARRAY(...))`: one array of ids, as in the sweep (db.outbox), rather than a join of
# the subquery with every month's partition; the ids come as one array parameter, so the
# statement is the same whatever the batch's length.
_PENDING_OF = (
    select(_EVENTS.id)
    .where(
        _EVENTS.id == any_(bindparam("row_ids", type_=ARRAY(BigInteger))),
        _EVENTS.status.in_([s.value for s in PENDING_STATUSES]),
    )
    .order_by(_EVENTS.id)
    .with_for_update(skip_locked=True)
)
_CLAIM_ROWS = (
    update(WebhookEvent.__table__)
    .where(
        _EVENTS.id == func.any(func.array(_PENDING_OF.scalar_subquery())),
        func.set_config("synchronous_commit", "off", True).is_not(None),
    )
    .values(
        status=EventStatus.PROCESSING.value, attempts=_EVENTS.attempts + 1, claimed_at=func.now()
    )
    .returning(
        _EVENTS.id,
        _EVENTS.attempts,
        _EVENTS.stripe_event_id,
        _EVENTS.type,
        _EVENTS.stripe_created,
        _EVENTS.api_version,
        _EVENTS.livemode,
        _EVENTS.account,
        _EVENTS.payload,
        _EVENTS.received_at,
    )
)
_SETTLE_ROW = (
    update(WebhookEvent.__table__)
    .where(_EVENTS.id == bindparam("row_id"))
    .values(status=bindparam("new_status"), processed_at=func.now(), last_error=bindparam("error"))
)


def claim(session: Session, *, row_id: int) -> Claim | None:
    """Mark a pending row `processing` for this attempt; None if it is locked or not pending."""
    claims = claim_rows(session, row_ids=[row_id])
    return claims[0] if claims else None


def claim_rows(session: Session, *, row_ids: list[int]) -> list[Claim]:
    """Mark the pending rows among these `processing` for this attempt, in id order; a row
    that is locked (never waited for) or not pending is left out.

    One round trip: the rows are locked and updated by the same statement, which also turns
    the transaction's synchronous commit off (see the module's doc), and returns the stored
    events."""
    rows = session.execute(_CLAIM_ROWS, {"row_ids": row_ids}).all()
    claims = [
        Claim(
            attempt=row.attempts,
            event=StripeEvent(
                row_id=row.id,
                id=row.stripe_event_id,
                type=row.type,
                created=row.stripe_created,
                api_version=row.api_version,
                livemode=row.livemode,
                account=row.account,
                payload=row.payload,
            ),
            received_at=row.received_at,
        )
        for row in rows
    ]
    return sorted(claims, key=lambda c: c.row_id)


def apply(claim: Claim, *, ctx: BillingContext, session: Session | None = None) -> Outcome:
    """Run the registry's billing function and mark the row processed, in one transaction,
    under the customer's lock. With `session` (outside any transaction), on that session's
    connection; else on a new one."""
    own = contextlib.nullcontext(session) if session is not None else new_session()
    with own as work, work.begin():
        chunk = lock_chunk(work, [claim], ctx=ctx)
        outcome = apply_in(work, claim, ctx=ctx, chunk=chunk)
        settle_chunk(work, chunk)
        return outcome


@dataclass(slots=True)
class ChunkLocks:
    """The rows of a chunk of claims locked together (`lock_chunk`): their status and
    attempts as locked, and the rows done, settled together at the chunk's end
    (`settle_chunk`)."""

    rows: dict[int, tuple[str, int]]
    settled: dict[EventStatus, list[int]] = field(default_factory=dict)


def lock_chunk(session: Session, claims: list[Claim], *, ctx: BillingContext) -> ChunkLocks:
    """Lock the customers of the claims whose handler will apply (in the claims' order,
    which every worker sorts alike), then the claims' rows: two statements for the chunk
    instead of one for each of its events. The locks are held until the transaction ends
    either way, so taking them first changes nothing but the round trips."""
    lock_customers(
        session,
        [
            claim.event.customer_id
            for claim in claims
            if claim.event.customer_id and _applies(claim.event, ctx)
        ],
    )
    rows = session.execute(_LOCK_ROWS, {"row_ids": [claim.row_id for claim in claims]})
    return ChunkLocks(rows={row.id: (row.status, row.attempts) for row in rows})


def settle_chunk(session: Session, chunk: ChunkLocks) -> None:
    """Settle, in one statement a status, the rows `apply_in` left to the chunk's end."""
    for status, row_ids in chunk.settled.items():
        session.execute(_SETTLE_ROWS, {"row_ids": row_ids, "new_status": status.value})
    chunk.settled.clear()


def _applies(event: StripeEvent, ctx: BillingContext) -> bool:
    """Whether a handler will apply the event (else it is only kept: `ignored`)."""
    return event.type in HANDLERS and _foreign_reason(event, ctx) is None


def _foreign_reason(event: StripeEvent, ctx: BillingContext) -> str | None:
    """Why the event is not this deployment's to apply (the other mode, a connected
    account); None when it is."""
    return foreign_event_reason(
        livemode=event.livemode, account=event.account, live=not ctx.settings.stripe_test_mode
    )


def apply_in(session: Session, claim: Claim, *, ctx: BillingContext, chunk: ChunkLocks) -> Outcome:
    """`apply` inside the caller's transaction (the caller commits; a batch commits several
    events' work at once), once `lock_chunk` has locked the claim's row and customer; the
    row's final status waits for `settle_chunk`."""
    event = claim.event
    handler = HANDLERS.get(event.type)
    foreign = _foreign_reason(event, ctx)
    locked = chunk.rows.get(claim.row_id)
    if locked is None:  # not there to lock: nothing to apply
        return Outcome.SUPERSEDED
    status, attempts = locked
    if status != EventStatus.PROCESSING or attempts != claim.attempt:
        return Outcome.SUPERSEDED
    if foreign is not None:  # stored before the endpoint refused such events, say
        _settle_row(session, claim, EventStatus.IGNORED, last_error=foreign)
        return Outcome.IGNORED
    if handler is not None:
        handler(session, ctx, event)
        count_unproven_api_version(session, event_type=event.type, api_version=event.api_version)
        # Once committed: a batch rolled back (another event failed, the worker was killed)
        # has handled nothing.
        object_id = event.object.get("id")
        after_commit(
            session, lambda: log.info("handled %s %s object=%s", event.type, event.id, object_id)
        )
    done = EventStatus.PROCESSED if handler else EventStatus.IGNORED
    chunk.settled.setdefault(done, []).append(claim.row_id)
    observe_end_to_end(session, event_type=event.type, received_at=claim.received_at)
    return Outcome.PROCESSED if handler else Outcome.IGNORED


def _settle_row(
    session: Session, claim: Claim, status: EventStatus, *, last_error: str | None = None
) -> None:
    session.execute(
        _SETTLE_ROW, {"row_id": claim.row_id, "new_status": status.value, "error": last_error}
    )


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
