"""Publish newly stored events to the broker from a background thread, in batches.

The request never waits for the broker: it hands the new row id to this thread and answers.
The thread gathers ids for a few milliseconds and publishes one
`billing.enqueue_stored_events` message per batch. If the broker is down, the batch is
dropped and the rows stay `received`; the sweep enqueues them once it is back.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time

from celery import Celery

log = logging.getLogger(__name__)

BATCH_WINDOW_SECONDS = 0.005
MAX_BATCH = 500
MAX_BACKLOG = 100_000
BROKER_DOWN_PAUSE_SECONDS = 2.0


class EventDispatcher:
    def __init__(
        self, celery_app: Celery, task_name: str = "billing.enqueue_stored_events"
    ) -> None:
        self._app = celery_app
        self._task_name = task_name
        self._ids: queue.Queue[int | None] = queue.Queue(maxsize=MAX_BACKLOG)
        self._thread = threading.Thread(target=self._run, name="event-dispatcher", daemon=True)
        self._broker_down_until = 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Publish what is gathered (if the broker answers), then end the thread."""
        try:
            self._ids.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    def submit(self, row_id: int) -> None:
        # When full, the sweep will find the row; memory stays bounded during a long outage.
        with contextlib.suppress(queue.Full):
            self._ids.put_nowait(row_id)

    def _run(self) -> None:
        while True:
            batch, stopping = self._gather()
            if batch:
                self._publish(batch)
            if stopping:
                return

    def _gather(self) -> tuple[list[int], bool]:
        first = self._ids.get()
        if first is None:
            return [], True
        batch = [first]
        deadline = time.monotonic() + BATCH_WINDOW_SECONDS
        while len(batch) < MAX_BATCH:
            remaining = deadline - time.monotonic()
            try:
                row_id = (
                    self._ids.get(timeout=remaining) if remaining > 0 else self._ids.get_nowait()
                )
            except queue.Empty:
                break
            if row_id is None:
                return batch, True
            batch.append(row_id)
        return batch, False

    def _publish(self, batch: list[int]) -> None:
        if time.monotonic() < self._broker_down_until:
            return  # left `received` for the sweep
        try:
            self._app.send_task(self._task_name, args=[batch], retry=False)
        except Exception as exc:
            self._broker_down_until = time.monotonic() + BROKER_DOWN_PAUSE_SECONDS
            log.warning(
                "broker unreachable, %d stored events left for the sweep: %s", len(batch), exc
            )
