"""Follow-up work published once per batch of events instead of once per item.

A batch of events (`tasks.events.tasks`) commits one transaction per event, and each commit
may have follow-up work to hand on: a queued email for `emails.send`, an invoice for
`billing.archive_invoice_pdf`. Inside `batched_publishes()`, such a publish only notes its
item; when the batch ends, the items go out as one message per task (or per `chunk` items),
whose argument is the list. A Celery publish costs about 0.45 ms of CPU and, with task events
on, more work for the consumer: per email and per invoice, on renewal day, that was a share
of the worker's time of its own.

A message for one event's follow-ups carries that event's id and type in its headers, as a
publish made at once does (`tasks.celery_app`); one for several events' carries none (each
email row's key and each invoice id still say what it is for).

Nothing is at risk in the wait: every item is committed before it is noted (the callers
publish from `after_commit`), and a batch that dies before it publishes leaves rows the
sweeps find (`emails.sweep_pending`, the archive's nightly fill), as a failed publish does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from core import log_context
from tasks.celery_app import app

log = logging.getLogger(__name__)

EVENT_FIELDS = (log_context.EVENT_ID, log_context.EVENT_TYPE)


@dataclass(slots=True)
class _Noted:
    """One task's items in the order noted, each with the event it was noted for."""

    chunk: int
    items: list[object] = field(default_factory=list)
    events: list[tuple[tuple[str, str], ...]] = field(default_factory=list)


_NOTED: ContextVar[dict[str, _Noted] | None] = ContextVar("batched_publishes", default=None)


def publish(task_name: str, item: object, *, chunk: int) -> None:
    """Send `task_name` for `item`: at once (args `[item]`), or, inside `batched_publishes()`,
    with the batch's other items when it ends (args `[[item, ...]]`, at most `chunk` each)."""
    noted = _NOTED.get()
    if noted is None:
        app.send_task(task_name, args=[item])
        return
    pending = noted.setdefault(task_name, _Noted(chunk))
    if item in pending.items:  # one invoice finalized and paid in one batch: one archive
        return
    bound = log_context.current()
    pending.items.append(item)
    pending.events.append(tuple((k, bound[k]) for k in EVENT_FIELDS if k in bound))


@contextmanager
def batched_publishes() -> Iterator[None]:
    """Collect the publishes made inside the block; send them, grouped, when it ends (also
    when it raises: what was noted is committed)."""
    noted: dict[str, _Noted] = {}
    token = _NOTED.set(noted)
    try:
        yield
    finally:
        _NOTED.reset(token)
        _send(noted)


def _send(noted: dict[str, _Noted]) -> None:
    if not noted:
        return
    try:
        with app.producer_or_acquire() as producer:
            for task_name, pending in noted.items():
                for start in range(0, len(pending.items), pending.chunk):
                    end = start + pending.chunk
                    with _headers_of(pending.events[start:end]):
                        app.send_task(task_name, args=[pending.items[start:end]], producer=producer)
    except Exception as exc:  # the broker is down: the rows wait for their sweeps
        log.warning("follow-up tasks left for the sweeps: %s", exc)


@contextmanager
def _headers_of(events: list[tuple[tuple[str, str], ...]]) -> Iterator[None]:
    """Publish under the items' event when they share one, else under no event."""
    outside = {k: v for k, v in log_context.current().items() if k not in EVENT_FIELDS}
    shared = dict(events[0]) if len(set(events)) == 1 else {}
    with log_context.only(**outside, **shared):
        yield
