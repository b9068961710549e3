"""Queued emails reach a real SMTP server once: after the commit, through `emails.send`."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator

import pytest

from core.settings import get_settings
from db.emails import queue_email
from db.models import EmailLog
from db.session import new_session, transaction
from emails.rendering import EmailRenderer
from emails.samples import SAMPLES
from tasks.context import publish_email
from tasks.emails import send_email, sweep_pending_emails
from tests.support.processes import free_port


def address(kind: str = "user") -> str:
    return f"{kind}-{uuid.uuid4().hex[:10]}@example.com"


def queue(template: str, recipients: list[str], context: dict | None = None, key: str = "") -> int:
    with transaction() as session:
        return queue_email(
            session,
            key=key or f"test:{uuid.uuid4().hex}",
            template=template,
            recipients=recipients,
            context=SAMPLES[template] if context is None else context,
            send=publish_email,
        )


def store_email(template: str, recipients: list[str], context: dict | None = None) -> int:
    """A queued row that no task message announces: only the test's own `apply` sends it."""
    with new_session() as session, session.begin():
        row = EmailLog(
            idempotency_key=f"test:{uuid.uuid4().hex}",
            template=template,
            recipients=recipients,
            context=SAMPLES[template] if context is None else context,
        )
        session.add(row)
        session.flush()
        return row.id


def wait_until_sent(row_id: int, timeout: float = 10.0) -> EmailLog:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = email_row(row_id)
        if row.status != "pending":
            return row
        time.sleep(0.05)
    raise AssertionError(f"email {row_id} still pending")


def email_row(row_id: int) -> EmailLog:
    with new_session() as session:
        return session.get(EmailLog, row_id)


@pytest.mark.parametrize("template", sorted(SAMPLES))
def test_each_email_arrives_with_both_parts_headers_and_recipients(smtp_server, worker, template):
    to = [address(), address()]
    row_id = queue(template, to)

    (received,) = smtp_server.wait_for(to[0])

    message = received.message
    assert received.recipients == to
    assert received.mail_from == "billing@example.com"
    assert message["From"] == "billing@example.com"
    assert message["To"] == ", ".join(to)
    assert (
        message["Subject"]
        == EmailRenderer(get_settings()).render(template, SAMPLES[template]).subject
    )
    assert message["Message-ID"].endswith("@example.com>")
    assert message.get_content_type() == "multipart/alternative"
    parts = {part.get_content_type(): part.get_content() for part in message.iter_parts()}
    assert set(parts) == {"text/plain", "text/html"}
    assert "Example SaaS" in parts["text/plain"] and "Example SaaS" in parts["text/html"]
    row = wait_until_sent(row_id)
    assert (row.status, row.attempts) == ("sent", 1)


def test_the_log_records_the_smtp_answer_and_the_time_sent(smtp_server):
    to = address()
    row_id = store_email("payment_failed", [to])

    assert send_email.apply(args=[row_id]).get() == "sent"

    row = email_row(row_id)
    assert row.status == "sent"
    assert row.attempts == 1
    assert row.smtp_response.startswith("250 2.0.0 Ok: queued as")
    assert row.sent_at is not None
    assert row.subject == "Your payment of $29.00 did not go through"


def test_a_script_in_a_name_arrives_escaped(smtp_server):
    to = address()
    context = {**SAMPLES["payment_succeeded"], "customer_name": "<script>alert(1)</script>"}
    send_email.apply(args=[store_email("payment_succeeded", [to], context)])

    (received,) = smtp_server.for_recipient(to)
    html = received.message.get_body(("html",)).get_content()
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_a_second_request_for_the_same_key_sends_once(smtp_server, worker):
    to = address()
    key = f"receipt:in_{uuid.uuid4().hex[:12]}"
    first = queue("payment_succeeded", [to], key=key)
    second = queue("payment_succeeded", [to], key=key)
    wait_until_sent(first)

    assert send_email.apply(args=[first]).get() == "skipped"  # a duplicated task message
    assert second is None
    assert len(smtp_server.wait_for(to)) == 1


def test_nothing_is_queued_or_sent_when_the_callers_transaction_rolls_back(smtp_server):
    to = address()
    key = f"test:{uuid.uuid4().hex}"
    with pytest.raises(RuntimeError), transaction() as session:
        queue_email(
            session,
            key=key,
            template="credits_low",
            recipients=[to],
            context=SAMPLES["credits_low"],
            send=publish_email,
        )
        raise RuntimeError("the handler failed after queueing")

    with new_session() as session:
        assert session.query(EmailLog).filter_by(idempotency_key=key).count() == 0
    assert smtp_server.for_recipient(to) == []


def test_a_451_then_250_delivers_once_after_a_retry(smtp_server):
    to = address("tempfail")
    row_id = store_email("payment_failed", [to])

    send_email.apply(args=[row_id])

    row = email_row(row_id)
    assert (row.status, row.attempts) == ("sent", 2)
    assert row.sent_at is not None and row.last_error is None
    assert len(smtp_server.for_recipient(to)) == 1


def test_a_temporary_failure_keeps_the_row_pending_until_its_retry_is_due(smtp_server):
    from types import SimpleNamespace

    from tasks.emails import _send_one

    to = address("tempfail")
    row_id = store_email("payment_failed", [to])
    task = SimpleNamespace(request=SimpleNamespace(retries=0), max_retries=3)

    outcome, retry_in = _send_one(task, row_id)

    row = email_row(row_id)
    assert outcome == "retried" and retry_in is not None
    assert (row.status, row.attempts, row.sent_at) == ("pending", 1, None)
    assert row.last_error.startswith("451")
    # The sweep leaves it alone until then: its last touch is the retry's time.
    ahead = (row.enqueued_at - row.created_at).total_seconds()
    assert int(retry_in) - 5 <= ahead <= int(retry_in) + 60


def test_a_550_fails_the_row_without_retrying_and_logs_no_full_address(smtp_server, caplog):
    to = address("reject")
    row_id = store_email("payment_failed", [to])

    with caplog.at_level(logging.INFO):
        send_email.apply(args=[row_id])

    row = email_row(row_id)
    assert (row.status, row.attempts) == ("failed", 1)
    assert row.last_error.startswith("every recipient refused: 550 5.1.1")
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("mail."))
    assert to not in ours
    assert f"{to[0]}***@example.com" in ours


@pytest.fixture
def smtp_url(monkeypatch) -> Iterator[None]:
    """Point SMTP_URL somewhere else for one test."""

    def use(url: str) -> None:
        monkeypatch.setenv("SMTP_URL", url)
        get_settings.cache_clear()

    yield use
    monkeypatch.undo()
    get_settings.cache_clear()


def test_an_unreachable_server_is_retried_then_fails_the_row(smtp_url, monkeypatch):
    smtp_url(f"smtp://127.0.0.1:{free_port()}")
    monkeypatch.setattr(send_email, "max_retries", 2)
    row_id = store_email("credits_low", [address()])

    send_email.apply(args=[row_id])

    row = email_row(row_id)
    assert (row.status, row.attempts) == ("failed", 3)
    assert "ConnectionRefusedError" in row.last_error


def test_a_lost_message_is_sent_by_the_email_sweep(smtp_server, worker):
    to = address()
    with new_session() as session, session.begin():
        row = EmailLog(
            idempotency_key=f"test:{uuid.uuid4().hex}",
            template="credits_low",
            recipients=[to],
            context=SAMPLES["credits_low"],
        )
        session.add(row)  # stored, never published: as if the broker was down at commit

    assert sweep_pending_emails(stale_after_seconds=0) >= 1
    assert len(smtp_server.wait_for(to)) == 1
