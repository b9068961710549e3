"""Structured logs: one JSON object per line, and the Stripe event's id on every line of its
processing (the handler's, the emails it causes, the retries and the failure), read from
the output of a real worker process."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core import log_context
from core.log_context import ContextFilter
from core.log_setup import JsonLineFormatter, TextLineFormatter
from tests.conftest import WEBHOOK_SECRET, make_client
from tests.support.events import encode, signed, wait_for_status
from tests.support.processes import WorkerProcess
from tests.support.stripe_events import Ids, known_customer, stripe_event

WEBHOOK = "/api/stripe/webhook"


def json_lines(output: str) -> list[dict[str, Any]]:
    """Every line of the output as a JSON object; fails on the first line that is not one."""
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def complete_json_lines(output: str) -> list[dict[str, Any]]:
    """The lines a running process has finished writing: not a last one still on its way."""
    return json_lines(output[: output.rfind("\n") + 1])


def eventually(check: Callable[[list[dict[str, Any]]], None], log: Callable[[], str]) -> None:
    """Run `check` on the log's lines until its assertions hold: a process writes its lines
    when it gets to them, so the test waits for exactly what it asserts."""
    deadline = time.monotonic() + 20.0
    while True:
        try:
            check(complete_json_lines(log()))
            return
        except AssertionError as failure:
            if time.monotonic() > deadline:
                raise AssertionError(f"{failure}\n{log()[-3000:]}") from failure
        time.sleep(0.05)


def lines_of_tasks(lines: list[dict[str, Any]], event_id: str) -> list[dict[str, Any]]:
    """The lines written by every task that worked on the event: its `stripe.<type>` task
    (each attempt) and the tasks it caused."""
    task_ids = {line["task_id"] for line in lines if line.get("event_id") == event_id}
    return [line for line in lines if line.get("task_id") in task_ids]


@pytest.fixture
def json_worker(smtp_server) -> Iterator[tuple[WorkerProcess, str]]:
    """A worker of its own with LOG_FORMAT=json, on queues of its own; one retry per task so
    that a transient failure shows its retry and then its failure quickly."""
    prefix = f"{os.environ['BROKER_KEY_PREFIX']}json-worker:"
    worker = WorkerProcess(
        env={"LOG_FORMAT": "json", "BROKER_KEY_PREFIX": prefix, "TASK_MAX_RETRIES": "1"}
    )
    worker.start()
    yield worker, prefix
    worker.kill()  # nothing of it is needed any more: no warm shutdown to wait for


def test_every_line_of_an_events_processing_carries_its_id(json_worker):
    worker, prefix = json_worker
    ids = known_customer(Ids())  # the account has its email: invoice.paid sends a receipt
    paid = stripe_event("invoice.paid", ids)
    # No lines and no known subscription: the price is "not known yet", a transient error,
    # retried once (TASK_MAX_RETRIES=1) and then failed.
    waiting = stripe_event("invoice.paid", Ids())
    waiting["data"]["object"]["lines"]["data"] = []
    # The API stays up until the worker has the events: closing it at once could cancel
    # the dispatcher's publish, leaving the rows to a sweep that this test does not run.
    # One after the other, so that each is a message of its own: a message for a batch of
    # events has lines of several events (each of its own lines names its event; Celery's
    # line for the message names none).
    with make_client(broker_key_prefix=prefix) as client:
        for event, status in ((paid, "processed"), (waiting, "failed")):
            body = encode(event)
            response = client.post(WEBHOOK, content=body, headers=signed(body, WEBHOOK_SECRET))
            assert response.status_code == 200
            assert wait_for_status(event["id"]).status == status

    def processed_carries_its_event(lines: list[dict[str, Any]]) -> None:
        processed = lines_of_tasks(lines, paid["id"])
        # Its own task, the receipt, and the archive of the invoice's PDF it queued.
        assert {line["task_name"] for line in processed} == {
            "stripe.invoice.paid",
            "emails.send",
            "billing.archive_invoice_pdf",
        }
        assert all(line.get("event_id") == paid["id"] for line in processed)
        assert all(line.get("event_type") == "invoice.paid" for line in processed)
        messages = [line["message"] for line in processed]
        assert any(m.startswith(f"handled invoice.paid {paid['id']}") for m in messages)
        assert any(m.startswith("queued receipt:") for m in messages)
        assert any(m.startswith("email ") and " sent to " in m for m in messages)
        # Celery's line of each task: written after the task's own lines, so waited for too.
        assert any(m.startswith(f"invoice {ids.invoice} archived") for m in messages)
        assert sum("succeeded in" in m for m in messages) == 3

    def failed_carries_its_event(lines: list[dict[str, Any]]) -> None:
        failed = lines_of_tasks(lines, waiting["id"])
        assert all(line.get("event_id") == waiting["id"] for line in failed)
        messages = [line["message"] for line in failed]
        assert any("transient error, retry in" in m for m in messages)
        assert any(" retry: Retry in " in m for m in messages)  # Celery's
        assert any(m.startswith("event row ") and "not known yet" in m for m in messages)
        assert any("raised unexpected" in m for m in messages)  # Celery's

    for check in (processed_carries_its_event, failed_carries_its_event):
        eventually(check, worker.log)
    lines = complete_json_lines(worker.log())  # every line of the output parses
    assert all({"timestamp", "level", "logger", "message"} <= line.keys() for line in lines)

    # Addresses are named by their first letter only, everywhere.
    assert ids.email not in worker.log()


def test_the_api_process_logs_json_lines_too(api_server):
    # uvicorn's own lines included ("Started server process", ...).
    event = stripe_event("customer.created", Ids())
    body = encode(event)
    assert (
        httpx.post(
            f"{api_server.url}{WEBHOOK}", content=body, headers=signed(body, WEBHOOK_SECRET)
        ).status_code
        == 200
    )
    lines = complete_json_lines(api_server.log())  # every line parses
    assert any(line["logger"].startswith("uvicorn") for line in lines)


# What sets logging up in each process: `configure_logging` (the API's and the worker's
# main process, beat, Flower) and the bare config (what uvicorn applies in its workers).
SET_UP_LOGGING = {
    "configure_logging": "from core.log_setup import configure_logging\nconfigure_logging()",
    "the config alone": "import logging.config\n"
    "from core.log_setup import logging_config\n"
    "logging.config.dictConfig(logging_config())",
}


@pytest.mark.parametrize("set_up", SET_UP_LOGGING.values(), ids=SET_UP_LOGGING.keys())
def test_a_python_warning_is_a_json_line_too(set_up):
    """A library's warning (redis-py's, say) goes through logging: a JSON line like any
    other, redacted like any other, not raw text among the JSON."""
    program = f"{set_up}\nimport warnings\nwarnings.warn('card on file for jane.doe@example.com')"
    result = subprocess.run(
        [sys.executable, "-c", program],
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, "LOG_FORMAT": "json"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    (line,) = json_lines(result.stderr)
    assert (line["level"], line["logger"]) == ("WARNING", "py.warnings")
    assert "UserWarning: card on file for j***@example.com" in line["message"]
    assert "jane.doe@example.com" not in result.stderr


# --- The filter and the formatters ----------------------------------------------------


def _logger(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"test_json_logs.{id(stream)}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_a_json_line_has_the_fields_and_the_bound_event():
    logger, stream = _logger(JsonLineFormatter())

    with log_context.bound(event_id="evt_123", event_type="invoice.paid"):
        logger.info("handled %s for %s", "in_1", "jane.doe@example.com")
    logger.warning("outside", extra={"card": "4242 4242 4242 4242"})

    inside, outside = json_lines(stream.getvalue())
    assert inside["level"] == "INFO"
    assert inside["logger"] == logger.name
    assert inside["message"] == "handled in_1 for j***@example.com"
    assert (inside["event_id"], inside["event_type"]) == ("evt_123", "invoice.paid")
    assert inside["timestamp"].endswith("+00:00")
    assert "event_id" not in outside
    assert outside["card"] == "[card]"


def test_extra_values_that_are_not_text_are_redacted_too():
    logger, stream = _logger(JsonLineFormatter())

    class Customer:
        def __str__(self) -> str:
            return "customer jane.doe@example.com card 4242424242424242"

    logger.warning(
        "x",
        extra={
            "error": ValueError("jane.doe@example.com"),
            "customer": Customer(),
            "emails": {"jane.doe@example.com"},
            "nested": {"list": [ValueError("sk_live_abc123")]},
        },
    )

    (line,) = json_lines(stream.getvalue())
    assert "jane.doe@example.com" not in stream.getvalue()
    assert "4242424242424242" not in stream.getvalue()
    assert line["error"] == "j***@example.com"
    assert line["customer"] == "customer j***@example.com card [card]"
    assert line["nested"] == {"list": ["sk_live_[Filtered]"]}


def test_a_text_line_shows_the_event_id():
    logger, stream = _logger(TextLineFormatter())

    with log_context.bound(event_id="evt_123"):
        logger.info("handled for jane.doe@example.com")
    logger.info("no event")

    inside, outside = stream.getvalue().splitlines()
    assert inside.endswith(f"INFO {logger.name} [evt_123] handled for j***@example.com")
    assert outside.endswith(f"INFO {logger.name} no event")


def test_concurrent_requests_keep_their_own_event():
    """Each asyncio task (an API request) has its own copy of the context."""
    logger, stream = _logger(JsonLineFormatter())

    async def request(event_id: str) -> None:
        with log_context.bound(event_id=event_id):
            await asyncio.sleep(0)  # the other request runs here
            logger.info("storing %s", event_id)

    async def both() -> None:
        await asyncio.gather(request("evt_a"), request("evt_b"))

    asyncio.run(both())

    for line in json_lines(stream.getvalue()):
        assert line["message"] == f"storing {line['event_id']}"
    assert log_context.current() == {}
