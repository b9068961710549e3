"""Publish newly stored events to the broker from the event loop, in batches.

The request never waits for the broker: it appends the new row id to a list and answers.
A task on the same loop wakes once per window and publishes one
`billing.enqueue_stored_events` message per batch (up to MAX_BATCH row ids), through Celery
and kombu on whichever broker BROKER_URL names: Redis, or RabbitMQ with publisher confirms.

kombu's clients are synchronous, so each publish runs on one thread of its own (one, so the
pooled connection is only ever used by one thread, and batches leave in order). A publish
holds the GIL for about a millisecond; batching makes that one per window, not one per
request, which is why the hot path can afford it.

If the broker is down, the batch is dropped and the rows stay `received`; the sweep
enqueues them once it is back. The same holds on RabbitMQ when the broker does not confirm
a message: the publish raises, and the sweep owns the rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from celery import Celery

log = logging.getLogger(__name__)

# Long enough that a busy API sends a few dozen messages a second, not one per request;
# short next to the time a worker takes to pick the message up.
BATCH_WINDOW_SECONDS = 0.02
MAX_BATCH = 500
MAX_BACKLOG = 100_000
BROKER_DOWN_PAUSE_SECONDS = 2.0
STOP_TIMEOUT_SECONDS = 2.0
# One reconnection, at once: it replaces a connection the broker closed while the API was
# idle (RabbitMQ drops one that missed its heartbeats). More retries would hold the batch
# while ids pile up; a failed publish is left to the sweep.
PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0,
    "interval_max": 0,
}


class EventDispatcher:
    def __init__(
        self, celery_app: Celery, task_name: str = "billing.enqueue_stored_events"
    ) -> None:
        self._app = celery_app
        self._task_name = task_name
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="event-dispatch")
        self._ids: list[int] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._broker_down_until = 0.0

    def start(self) -> None:
        """Start the publishing task on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Publish what is gathered (if the broker answers in time), then end the task."""
        if self._task is not None:
            self._task.cancel()
            # Bounded, like everything on the way out: a task that does not finish its
            # cancellation must not hold the process open (the sweep publishes what is left).
            await asyncio.wait({self._task}, timeout=STOP_TIMEOUT_SECONDS)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._flush(), STOP_TIMEOUT_SECONDS)
        with contextlib.suppress(TimeoutError):
            closing = asyncio.get_running_loop().run_in_executor(self._executor, self._app.close)
            await asyncio.wait_for(closing, STOP_TIMEOUT_SECONDS)
        self._executor.shutdown(wait=False, cancel_futures=True)

    def submit(self, row_id: int) -> None:
        # When full, the sweep will find the row; memory stays bounded during a long outage.
        if len(self._ids) < MAX_BACKLOG:
            self._ids.append(row_id)
            self._wakeup.set()

    async def broker_answers(self) -> bool:
        """Whether a connection to the broker opens now (readiness), on a thread of the
        default pool so that a slow answer never holds a publish up."""
        return await asyncio.to_thread(self._connect_once)

    def _connect_once(self) -> bool:
        with self._app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=1)
            return True

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            # The window gathers the ids of many requests into one message.
            await asyncio.sleep(BATCH_WINDOW_SECONDS)
            self._wakeup.clear()
            await self._flush()

    async def _flush(self) -> None:
        ids, self._ids = self._ids, []
        for start in range(0, len(ids), MAX_BATCH):
            await self._publish(ids[start : start + MAX_BATCH])

    async def _publish(self, batch: list[int]) -> None:
        if time.monotonic() < self._broker_down_until:
            return  # left `received` for the sweep
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._send, batch)
        except Exception as exc:
            self._broker_down_until = time.monotonic() + BROKER_DOWN_PAUSE_SECONDS
            log.warning(
                "broker unreachable, %d stored events left for the sweep: %s", len(batch), exc
            )

    def _send(self, batch: list[int]) -> None:
        with self._app.producer_or_acquire() as producer:
            self._app.send_task(
                self._task_name,
                args=[batch],
                producer=producer,
                ignore_result=True,
                retry=True,
                retry_policy=PUBLISH_RETRY_POLICY,
            )
