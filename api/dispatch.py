"""Publish newly stored events to the broker from the event loop, in batches.

The request never waits for the broker: it appends the new row id to a list and answers.
A task on the same loop wakes once per window and pushes one
`billing.enqueue_stored_events` message per batch straight onto the Celery queue's Redis
list, with an async client. Celery's own send_task is not used here: it is synchronous
(a thread would be needed, and it takes the GIL from the loop for about a millisecond per
message), it subscribes to a result channel per message and sends a `task-sent` event, none
of which an internal batch message needs. The message itself is built by Celery
(`as_task_v2`) and serialized by kombu, so a worker reads it as one of its own.

If the broker is down, the batch is dropped and the rows stay `received`; the sweep
enqueues them once it is back.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
import uuid

import redis.asyncio
from celery import Celery
from kombu.serialization import dumps as serialize
from kombu.utils.json import dumps as json_dumps
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

log = logging.getLogger(__name__)

# Long enough that a busy API sends a few dozen messages a second, not one per request;
# short next to the time a worker takes to pick the message up.
BATCH_WINDOW_SECONDS = 0.02
MAX_BATCH = 500
MAX_BACKLOG = 100_000
BROKER_DOWN_PAUSE_SECONDS = 2.0
BROKER_TIMEOUT_SECONDS = 1.0
STOP_TIMEOUT_SECONDS = 2.0


class EventDispatcher:
    def __init__(
        self, celery_app: Celery, task_name: str = "billing.enqueue_stored_events"
    ) -> None:
        self._app = celery_app
        self._task_name = task_name
        conf = celery_app.conf
        # Where Celery's router sends this task; Celery publishes a direct-queue task to the
        # anonymous exchange with the queue name as routing key, and kombu's Redis transport
        # stores it as an LPUSH on the (prefixed) queue key.
        self._queue: str = celery_app.amqp.router.route({}, task_name)["queue"].name
        prefix = (conf.broker_transport_options or {}).get("global_keyprefix", "")
        self._key = f"{prefix}{self._queue}"
        self._redis = redis.asyncio.from_url(
            conf.broker_url,
            socket_connect_timeout=BROKER_TIMEOUT_SECONDS,
            socket_timeout=BROKER_TIMEOUT_SECONDS,
            # One try: a failed publish is left to the sweep, not retried while ids pile up.
            retry=Retry(NoBackoff(), 0),
        )
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
        await self._redis.aclose()

    def submit(self, row_id: int) -> None:
        # When full, the sweep will find the row; memory stays bounded during a long outage.
        if len(self._ids) < MAX_BACKLOG:
            self._ids.append(row_id)
            self._wakeup.set()

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
            await self._redis.lpush(self._key, self._message(batch))
        except Exception as exc:
            self._broker_down_until = time.monotonic() + BROKER_DOWN_PAUSE_SECONDS
            log.warning(
                "broker unreachable, %d stored events left for the sweep: %s", len(batch), exc
            )

    def _message(self, batch: list[int]) -> str:
        """The task message as kombu's Redis transport stores it."""
        task_id = str(uuid.uuid4())
        headers, properties, body, _ = self._app.amqp.as_task_v2(
            task_id, self._task_name, args=[batch], origin=self._app.oid, ignore_result=True
        )
        content_type, content_encoding, data = serialize(body, serializer="json")
        properties.update(
            delivery_mode=2,  # persistent, Celery's default
            delivery_info={"exchange": "", "routing_key": self._queue},
            priority=0,
            body_encoding="base64",
            delivery_tag=str(uuid.uuid4()),
        )
        return json_dumps(
            {
                "body": base64.b64encode(data.encode() if isinstance(data, str) else data).decode(),
                "content-encoding": content_encoding,
                "content-type": content_type,
                "headers": headers,
                "properties": properties,
            }
        )
