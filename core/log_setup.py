"""Logging set-up shared by the API, the worker and beat.

One JSON object per line (`LOG_FORMAT=json`, the default, for log shippers) or a readable
line (`LOG_FORMAT=text`, for a terminal), each carrying the Stripe event and the Celery task
it was written for (see `core.log_context`), and each redacted (`core.redaction`).
"""

from __future__ import annotations

import logging
import logging.config
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from core import log_context
from core.redaction import redact_data, redact_text
from core.sentry import REPORTED_ATTRIBUTE
from core.settings import Settings, get_settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class JsonLineFormatter(JsonFormatter):
    """One JSON object per line: timestamp, level, logger, message, and whatever context
    or `extra` the record carries (event_id, event_type, task_id, task_name, ...)."""

    def __init__(self) -> None:
        super().__init__(
            ["levelname", "name", "message"],
            rename_fields={"levelname": "level", "name": "logger"},
            # uvicorn's `color_message` repeats the message with terminal colours.
            reserved_attrs=[*RESERVED_ATTRS, REPORTED_ATTRIBUTE, "color_message"],
            # UTF-8 out: names such as "Zoë" stay readable, and every shipper reads UTF-8.
            json_ensure_ascii=False,
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        # The timestamp first, as a reader scanning the lines expects; UTC, ISO 8601.
        log_data["timestamp"] = datetime.fromtimestamp(record.created, tz=UTC).isoformat()
        super().add_fields(log_data, record, message_dict)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        # The last guard: a message, an exception or an `extra` value that slipped an
        # address or a key past its call site is still redacted here.
        # Values json would only turn into text later (an exception, an object) are turned
        # into text first, so that they are redacted too.
        plain = {key: _json_plain(value) for key, value in log_data.items()}
        redacted: dict[str, Any] = redact_data(plain)
        return redacted


def _json_plain(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dict):
        return {str(key): _json_plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_plain(item) for item in value]
    return str(value)


class TextLineFormatter(logging.Formatter):
    """`2025-01-01 12:00:00,000 INFO tasks.events.processing [evt_123] handled ...`"""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        # Built here rather than through a `%(context)s` field: an attribute set on the
        # record would travel on into Sentry's breadcrumbs.
        event_id = getattr(record, log_context.EVENT_ID, None)
        where = f"{record.name} [{event_id}]" if event_id else record.name
        return f"{record.asctime} {record.levelname} {where} {record.message}"

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


def logging_config(
    settings: Settings | None = None, level: int | str = logging.INFO
) -> dict[str, Any]:
    """A `logging.config.dictConfig` for this process, also handed to uvicorn (`log_config`),
    which applies it in each of its worker processes."""
    settings = settings or get_settings()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": log_context.ContextFilter}},
        "formatters": {"line": {"()": _line_formatter, "log_format": settings.log_format}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "line",
                "filters": ["context"],
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
        # uvicorn's loggers write through the root handler too, instead of their own text.
        "loggers": {
            **{
                name: {"handlers": [], "propagate": True}
                for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
            },
            # httpx and httpcore say every request at INFO and below: an invoice PDF's link
            # (a bearer of access to the document) in every archive's line. Our own lines
            # say what was fetched and how it went.
            **{name: {"level": "WARNING"} for name in ("httpx", "httpcore")},
        },
    }


def _line_formatter(log_format: str) -> logging.Formatter:
    """The formatter of LOG_FORMAT. Building it also routes Python warnings into logging (the
    `py.warnings` logger), so that a warning is a line of that format, not raw text on stderr:
    done here, every process that applies the config gets it, uvicorn's workers included."""
    logging.captureWarnings(True)
    return JsonLineFormatter() if log_format == "json" else TextLineFormatter()


def configure_logging(settings: Settings | None = None, level: int | str = logging.INFO) -> None:
    """Route every logger of the process to stderr in the LOG_FORMAT of the settings."""
    logging.config.dictConfig(logging_config(settings, level))
