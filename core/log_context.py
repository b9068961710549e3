"""What a process is working on, put on every log record it writes meanwhile.

One context variable holds the fields (the Stripe event id and type, the Celery task id and
name). A context variable rather than a thread-local: the API serves many requests on one
thread, each in its own asyncio task with its own copy of the context, and the worker runs
one task at a time per pool process. `ContextFilter`, installed on the log handler, copies
the fields onto each record, so the handler's lines, the email lines and the retry and
failure lines of one event all carry its id without any call site passing it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from types import MappingProxyType

EVENT_ID = "event_id"
EVENT_TYPE = "event_type"
TASK_ID = "task_id"
TASK_NAME = "task_name"
FIELDS = (EVENT_ID, EVENT_TYPE, TASK_ID, TASK_NAME)

_EMPTY: Mapping[str, str] = MappingProxyType({})
# Immutable mappings only: a context copied into another task must never see the first
# task's later changes.
_fields: ContextVar[Mapping[str, str]] = ContextVar("billing_log_fields", default=_EMPTY)


def current() -> Mapping[str, str]:
    """The fields bound in this context."""
    return _fields.get()


def bind(**fields: str | None) -> Token[Mapping[str, str]]:
    """Add fields (None values are left out) to this context; `reset` undoes it."""
    merged = {**_fields.get(), **{k: v for k, v in fields.items() if v is not None}}
    return _fields.set(MappingProxyType(merged))


def replace(**fields: str | None) -> Token[Mapping[str, str]]:
    """Bind exactly these fields, dropping whatever was bound before."""
    _fields.set(_EMPTY)
    return bind(**fields)


def reset(token: Token[Mapping[str, str]]) -> None:
    _fields.reset(token)


def clear() -> None:
    _fields.set(_EMPTY)


@contextmanager
def bound(**fields: str | None) -> Iterator[None]:
    """The fields are bound inside the block and restored to what they were after it."""
    token = bind(**fields)
    try:
        yield
    finally:
        _fields.reset(token)


@contextmanager
def only(**fields: str | None) -> Iterator[None]:
    """Exactly these fields inside the block; what was bound before, after it."""
    token = _fields.set(MappingProxyType({k: v for k, v in fields.items() if v is not None}))
    try:
        yield
    finally:
        _fields.reset(token)


class ContextFilter(logging.Filter):
    """Puts the bound fields on each record as attributes (`record.event_id`, ...).

    Installed on the handler, not on a logger: a logger's filters see only the records
    logged through that very logger, a handler's see every record it writes. A field the
    call site passed itself (`extra={"event_id": ...}`) is left as it is.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _fields.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True
