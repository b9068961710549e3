"""Store verified webhook events in `webhook_events`, many requests to one commit.

Requests put their event on a queue and await a future. A few writer coroutines each take
whatever has gathered (no timer, so a lone request waits for nothing) and store it with one
`INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING RETURNING` in one transaction.
Under load that turns dozens of round trips and fsyncs into one; every future is resolved
only after the commit, so nothing is acknowledged before it is durable.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import psycopg
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)

INSERT_EVENTS = """
INSERT INTO webhook_events
    (stripe_event_id, type, api_version, livemode, account, stripe_created, payload, status,
     processed_at)
SELECT e.id, e.type, e.api_version, e.livemode, e.account, to_timestamp(e.created),
       e.payload::jsonb, e.status, CASE WHEN e.status = 'ignored' THEN now() END
FROM unnest(%b::text[], %b::text[], %b::text[], %b::bool[], %b::text[], %b::bigint[],
            %b::text[], %b::text[])
     AS e(id, type, api_version, livemode, account, created, payload, status)
ON CONFLICT (stripe_event_id) DO NOTHING
RETURNING id, stripe_event_id
"""


class StorageUnavailable(Exception):
    """The database could not store the event; Stripe must deliver it again."""


class UnstorableEvent(Exception):
    """PostgreSQL refuses this payload (a NUL character in a string, say)."""


@dataclass(slots=True)
class IncomingEvent:
    stripe_event_id: str
    type: str
    api_version: str | None
    livemode: bool
    account: str | None
    created: int | None
    payload: str  # the verified body, stored as it came
    status: str  # `received`, or `ignored` for a type no task handles


@dataclass(frozen=True, slots=True)
class Stored:
    row_id: int | None  # None when the event id was stored before
    duplicate: bool


_Pending = tuple[IncomingEvent, "asyncio.Future[Stored]"]


class EventStore:
    def __init__(
        self, conninfo: str, *, writers: int = 2, max_batch: int = 256, timeout: float = 2.0
    ) -> None:
        self._pool = AsyncConnectionPool(
            conninfo,
            min_size=writers,
            max_size=writers + 1,  # one spare for readiness checks
            open=False,
            timeout=timeout,
            kwargs={"autocommit": True, "connect_timeout": max(1, int(timeout))},
        )
        self._writers = writers
        self._max_batch = max_batch
        self._timeout = timeout
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

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
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._pool.close()

    async def store(self, event: IncomingEvent) -> Stored:
        future: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((event, future))
        return await future

    async def _write_forever(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._write(batch)

    async def _write(self, batch: list[_Pending]) -> None:
        try:
            results = await self._insert([event for event, _ in batch])
        except psycopg.DataError:
            # One bad payload must not fail the others: store them one by one.
            for item in batch:
                await self._write_alone(item)
            return
        except Exception as exc:
            log.warning("webhook store failed for %d events: %s", len(batch), exc)
            _fail(batch, StorageUnavailable(str(exc)))
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _write_alone(self, item: _Pending) -> None:
        event, future = item
        try:
            (result,) = await self._insert([event])
        except psycopg.DataError as exc:
            _fail([item], UnstorableEvent(str(exc).splitlines()[0]))
        except Exception as exc:
            _fail([item], StorageUnavailable(str(exc)))
        else:
            if not future.done():
                future.set_result(result)

    async def _insert(self, events: list[IncomingEvent]) -> list[Stored]:
        columns = (
            [e.stripe_event_id for e in events],
            [e.type for e in events],
            [e.api_version for e in events],
            [e.livemode for e in events],
            [e.account for e in events],
            [e.created for e in events],
            [e.payload for e in events],
            [e.status for e in events],
        )
        # One statement in autocommit mode is its own transaction: psycopg returns only after
        # the server's ReadyForQuery, which follows the (synchronous) commit. No BEGIN/COMMIT
        # round trips needed.
        async with self._pool.connection(timeout=self._timeout) as conn:
            cursor = await conn.execute(INSERT_EVENTS, columns)
            inserted = {stripe_id: row_id for row_id, stripe_id in await cursor.fetchall()}
        # The first of several deliveries of one id in this batch is the one that stored it.
        results = []
        for e in events:
            row_id = inserted.pop(e.stripe_event_id, None)
            results.append(Stored(row_id=row_id, duplicate=row_id is None))
        return results


def _fail(batch: list[_Pending], error: Exception) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error)
