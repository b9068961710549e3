"""Store verified webhook events in `webhook_events`, many requests to one commit.

Requests put their event on a queue and await a future. A writer coroutine takes whatever
has gathered (no timer, so a lone request waits for nothing) and stores it with one
`INSERT ... SELECT FROM unnest(...) RETURNING` in one transaction (the table's insert trigger
drops a row whose Stripe id is stored already, as ON CONFLICT DO NOTHING did: migration 0016).
Under load that turns dozens of round trips and fsyncs into one; every future is resolved
only after the commit, so nothing is acknowledged before it is durable. A row PostgreSQL
refuses (an index entry too long, say) fails the statement, not its batch: the
batch is split until that row stands alone, and only its request gets UnstorableEvent (400).

Each writer owns one long-lived connection (opened on first use, and again after a
failure) and one cursor on it, with the statement prepared server-side from the start. The
API process is the bottleneck, and a pool checkout per batch (its lock, checks and reset)
plus a new cursor (a cold dumper cache) per batch made up about a third of a batch's client
CPU (docs/performance.md). The pool is kept, with one connection, for readiness checks only.

One writer per API process, not two: a statement's fixed cost (executor start-up, partition
routing, the commit's WAL flush) is worth several rows of PostgreSQL's CPU, and while the
only writer's statement runs, the next batch gathers. Under 16 connections a second writer
halved the batches (5 rows a statement against 8) and the API took 15 to 20 % fewer events
a second on a 2-core machine, where PostgreSQL shares the cores with the API.
"""

from __future__ import annotations

import asyncio
import logging
import math
import struct
import time
from dataclasses import dataclass
from typing import Any

import psycopg
import sentry_sdk
from psycopg import pq
from psycopg.adapt import Dumper
from psycopg_pool import AsyncConnectionPool

from core import log_context
from core.sentry import STRIPE_EVENT_ID_TAG, STRIPE_EVENT_TYPE_TAG

log = logging.getLogger(__name__)

# How long closing waits for the writers to end their cancelled batches.
CLOSE_TIMEOUT_SECONDS = 2.0
OUTAGE_REPORT_EVERY_SECONDS = 60.0

INSERT_EVENTS = """
INSERT INTO webhook_events
    (stripe_event_id, type, api_version, livemode, account, stripe_created, payload, status,
     last_error, processed_at)
SELECT e.id, e.type, e.api_version, e.livemode::bool, e.account,
       to_timestamp(e.created::bigint), e.payload::json, e.status, e.last_error,
       CASE WHEN e.status = 'ignored' THEN now() END
FROM unnest(%b, %b, %b, %b, %b, %b, %b, %b, %b)
     AS e(id, type, api_version, livemode, account, created, payload, status, last_error)
RETURNING id, stripe_event_id
"""


# PostgreSQL's binary array format: a header (dimensions, has-nulls flag, element type,
# length, lower bound), then each element as its byte length (-1 for NULL) and its bytes.
_TEXT_OID, _TEXT_ARRAY_OID = 25, 1009
_ARRAY_HEADER = struct.Struct("!iiIii")
_LENGTH = struct.Struct("!i")
_NULL = _LENGTH.pack(-1)


class _TextColumn:
    """One column of a batch, sent as one binary `text[]` parameter."""

    __slots__ = ("values",)

    def __init__(self, values: list[str | None] | list[bytes]) -> None:
        self.values = values


class _TextColumnDumper(Dumper):
    """Builds a `_TextColumn`'s binary array in one pass.

    psycopg's generic list dumper inspects every list to choose an element dumper and then
    dumps element by element through it, at more than twice the cost. These columns are
    known to be text: booleans and integers are sent as text and cast in the statement.
    """

    format = pq.Format.BINARY
    oid = _TEXT_ARRAY_OID

    def dump(self, obj: _TextColumn) -> bytes:
        parts = [b""]
        has_null = 0
        for value in obj.values:
            if value is None:
                has_null = 1
                parts.append(_NULL)
            else:
                data = value if isinstance(value, bytes) else value.encode()
                parts += (_LENGTH.pack(len(data)), data)
        parts[0] = _ARRAY_HEADER.pack(1, has_null, _TEXT_OID, len(obj.values), 1)
        return b"".join(parts)


class StorageUnavailable(Exception):
    """The database could not store the event; Stripe must deliver it again."""


class UnstorableEvent(Exception):
    """PostgreSQL refuses this row (an index entry over its limit, say)."""


@dataclass(slots=True)
class IncomingEvent:
    stripe_event_id: str
    type: str
    api_version: str | None
    livemode: bool
    account: str | None
    created: int | None
    # The verified body, stored as it came: UTF-8 that orjson has parsed. Kept as bytes:
    # decoding it only to encode it again for the wire is work on the hot path for nothing.
    payload: bytes
    # `received`, or `ignored`: a type no task handles, or an event of another mode or of a
    # Connect account (`last_error` says which).
    status: str
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class Stored:
    row_id: int | None  # None when the event id was stored before
    duplicate: bool


_Pending = tuple[IncomingEvent, "asyncio.Future[Stored]"]


class EventStore:
    def __init__(
        self, conninfo: str, *, writers: int = 1, max_batch: int = 256, timeout: float = 2.0
    ) -> None:
        self._conninfo = conninfo
        self._connect_kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": max(1, int(timeout)),
        }
        # Readiness checks only; the writers keep connections of their own.
        self._pool = AsyncConnectionPool(
            conninfo,
            min_size=1,
            max_size=1,
            open=False,
            timeout=timeout,
            kwargs=self._connect_kwargs,
        )
        self._writers = writers
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._outage_reports = OutageReports()

    @property
    def pool(self) -> AsyncConnectionPool:
        return self._pool

    async def open(self) -> None:
        # wait=False: the API starts (and answers /healthz, or 503s) while the database is down.
        await self._pool.open(wait=False)
        self._tasks = [asyncio.create_task(self._write_forever()) for _ in range(self._writers)]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:  # bounded: shutting down must never hang on a writer
            await asyncio.wait(self._tasks, timeout=CLOSE_TIMEOUT_SECONDS)
        await self._pool.close()

    async def store(self, event: IncomingEvent) -> Stored:
        future: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((event, future))
        try:
            return await future
        except (StorageUnavailable, UnstorableEvent) as exc:
            _report_unstored(event, exc, self._outage_reports)
            raise

    async def _write_forever(self) -> None:
        writer = _Writer(self._conninfo, self._connect_kwargs)
        try:
            while True:
                batch = [await self._queue.get()]
                while len(batch) < self._max_batch and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                await writer.write(batch)
        finally:
            await writer.close()


class _Writer:
    """One writer coroutine's connection: opened on first use, dropped after a failure."""

    def __init__(self, conninfo: str, connect_kwargs: dict[str, Any]) -> None:
        self._conninfo = conninfo
        self._connect_kwargs = connect_kwargs
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._cursor: psycopg.AsyncCursor[Any] | None = None

    async def close(self) -> None:
        await self._discard()

    async def write(self, batch: list[_Pending]) -> None:
        # A row PostgreSQL refuses fails the whole statement, so the batch is split in halves
        # until the refused rows stand alone: one bad event among n costs about 2·log2(n)
        # more statements, and the others are stored. In autocommit the failed statement left
        # the connection usable.
        parts = [batch]
        while parts:
            part = parts.pop()
            try:
                results = await self._insert([event for event, _ in part])
            except Exception as exc:
                if not _refuses_a_row(exc):
                    unstored = [item for rest in (part, *parts) for item in rest]
                    log.warning("webhook store failed for %d events: %s", len(unstored), exc)
                    _fail(unstored, StorageUnavailable(str(exc)))
                    # Whatever failed (a lost server, a timeout), the next batch starts afresh.
                    await self._discard()
                    return
                if len(part) == 1:
                    _fail(part, UnstorableEvent(str(exc).splitlines()[0]))
                else:
                    middle = len(part) // 2
                    parts += (part[middle:], part[:middle])
                continue
            for (_, future), result in zip(part, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _discard(self) -> None:
        conn, self._conn, self._cursor = self._conn, None, None
        if conn is not None:
            try:
                await conn.close()
            except Exception as exc:  # already gone; nothing left to release
                log.debug("closing a writer connection: %s", exc)

    async def _insert(self, events: list[IncomingEvent]) -> list[Stored]:
        if self._cursor is None:
            self._conn = await psycopg.AsyncConnection.connect(
                self._conninfo, **self._connect_kwargs
            )
            self._conn.adapters.register_dumper(_TextColumn, _TextColumnDumper)
            self._cursor = self._conn.cursor()
        # Every writer (of every API process) inserts in event-id order: two batches holding
        # the same ids (a storm of duplicate deliveries) then wait on each other in one order
        # instead of deadlocking.
        events_in_order = sorted(events, key=lambda e: e.stripe_event_id)
        columns = (
            _TextColumn([e.stripe_event_id for e in events_in_order]),
            _TextColumn([e.type for e in events_in_order]),
            _TextColumn([e.api_version for e in events_in_order]),
            _TextColumn(["true" if e.livemode else "false" for e in events_in_order]),
            _TextColumn([e.account for e in events_in_order]),
            _TextColumn([None if e.created is None else str(e.created) for e in events_in_order]),
            _TextColumn([e.payload for e in events_in_order]),
            _TextColumn([e.status for e in events_in_order]),
            _TextColumn([e.last_error for e in events_in_order]),
        )
        # One statement in autocommit mode is its own transaction: psycopg returns only after
        # the server's ReadyForQuery, which follows the (synchronous) commit. No BEGIN/COMMIT
        # round trips needed. Prepared from the first execution: the statement never changes.
        cursor = self._cursor
        await cursor.execute(INSERT_EVENTS, columns, prepare=True)
        inserted = {stripe_id: row_id for row_id, stripe_id in await cursor.fetchall()}
        # The first of several deliveries of one id in this batch is the one that stored it.
        results = []
        for e in events:
            row_id = inserted.pop(e.stripe_event_id, None)
            results.append(Stored(row_id=row_id, duplicate=row_id is None))
        return results


# SQLSTATE classes of an error one row's values cause: data exceptions (a
# timestamp out of range), integrity violations, and program limits (an index entry over
# ~2.7 KB: ProgramLimitExceeded, which psycopg files under OperationalError, beside lost
# connections). Anything else (connections, timeouts, a broken statement) fails every row.
_ROW_REFUSAL_CLASSES = frozenset({"22", "23", "54"})


def _refuses_a_row(error: Exception) -> bool:
    if not isinstance(error, psycopg.Error) or error.sqlstate is None:
        return False  # not the server's answer: the connection, a timeout, the client
    return error.sqlstate[:2] in _ROW_REFUSAL_CLASSES


def _fail(batch: list[_Pending], error: Exception) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error)


class OutageReports:
    """Lets through one outage report a minute per event store (per API process): during a
    database outage every delivery fails the same way, and a report each would cost the
    event loop (a third of a millisecond each) and the Sentry quota exactly when both
    matter. The next report says how many were held back."""

    def __init__(self, every_seconds: float = OUTAGE_REPORT_EVERY_SECONDS) -> None:
        self._every = every_seconds
        self._last = -math.inf
        self.held_back = 0

    def allow(self) -> bool:
        now = time.monotonic()
        if now - self._last < self._every:
            self.held_back += 1
            return False
        self._last = now
        return True


def _report_unstored(event: IncomingEvent, error: Exception, outage_reports: OutageReports) -> None:
    """Log and report an event that was not stored, under its Stripe id and type; an outage
    (StorageUnavailable) once a minute, a payload PostgreSQL refuses every time.

    Bound only here, on failure: nothing else is logged while a request stores its event
    (the writers log per batch), and the successful path stays free of the cost.
    """
    held_back = ""
    if isinstance(error, StorageUnavailable):
        if not outage_reports.allow():
            return
        if outage_reports.held_back:
            held_back = f" ({outage_reports.held_back} more since the last report)"
            outage_reports.held_back = 0
    with log_context.bound(event_id=event.stripe_event_id, event_type=event.type):
        log.warning(
            "event %s (%s) not stored: %s%s", event.stripe_event_id, event.type, error, held_back
        )
    with sentry_sdk.new_scope() as scope:
        scope.set_tag(STRIPE_EVENT_ID_TAG, event.stripe_event_id)
        scope.set_tag(STRIPE_EVENT_TYPE_TAG, event.type)
        # A payload PostgreSQL refuses needs a person; an outage Stripe will deliver again.
        scope.set_level("error" if isinstance(error, UnstorableEvent) else "warning")
        sentry_sdk.capture_exception(error)
