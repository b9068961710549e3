"""Email as an outbox: a billing rule queues a row in its own transaction (`db.emails`),
`emails.send` delivers it after the commit, and the idempotency key makes every repeat a
no-op; the sweep sends what no message announced."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any

import sentry_sdk
from celery import Task
from sqlalchemy import Boolean, Interval, bindparam, case, func, select, update

from core.metrics import EMAILS, EmailOutcome, email_template_label
from core.redaction import redact_email, redact_text
from core.sentry import REPORTED
from core.settings import Settings, get_settings
from core.task_names import SEND_EMAIL
from db.models import EmailLog, EmailStatus
from db.outbox import claim_stale_rows
from db.session import transaction
from emails.rendering import EmailRenderer
from emails.smtp import DeliveryError, SmtpConfig, build_message, deliver
from tasks.celery_app import app
from tasks.transient import retry_delay

log = logging.getLogger(__name__)

SEND_TASK = SEND_EMAIL
SWEEP_BATCH_SIZE = 500


# Built once, on the table: every email locks its row and writes its outcome, and neither
# needs the ORM's objects or its unit of work (docs/decisions/0007).
_EMAILS = EmailLog.__table__.c
_LOCK_EMAIL = (
    select(
        _EMAILS.id,
        _EMAILS.idempotency_key,
        _EMAILS.template,
        _EMAILS.recipients,
        _EMAILS.context,
        _EMAILS.subject,
        _EMAILS.status,
        _EMAILS.attempts,
        _EMAILS.last_error,
        _EMAILS.smtp_response,
    )
    .where(_EMAILS.id == bindparam("row_id"))
    .with_for_update(skip_locked=True)
)
_RECORD_OUTCOME = (
    update(EmailLog.__table__)
    .where(_EMAILS.id == bindparam("row_id"))
    .values(
        attempts=bindparam("new_attempts"),
        status=bindparam("new_status"),
        subject=bindparam("new_subject"),
        smtp_response=bindparam("new_smtp_response"),
        last_error=bindparam("new_last_error"),
        sent_at=case((bindparam("sent", type_=Boolean), func.now()), else_=_EMAILS.sent_at),
        # now() + NULL is NULL: the time is kept unless a retry is due.
        enqueued_at=func.coalesce(
            func.now() + bindparam("retry_after", type_=Interval), _EMAILS.enqueued_at
        ),
    )
)


@dataclass(slots=True)
class _Delivery:
    """An email_log row as locked for its delivery, and the outcome to write back."""

    id: int
    idempotency_key: str
    template: str
    recipients: list[str]
    context: dict[str, Any]
    subject: str | None
    status: str
    attempts: int
    last_error: str | None
    smtp_response: str | None
    sent: bool = False
    retry_after: timedelta | None = None


@lru_cache(maxsize=1)
def _renderer() -> EmailRenderer:
    return EmailRenderer(get_settings())


@app.task(name=SEND_TASK, bind=True, max_retries=get_settings().email_max_retries)
def send_email(self: Task, email_log_ids: int | list[int]) -> str | dict[int, str]:
    """Render and deliver email_log rows (one id, or a batch of them), each once; retry
    temporary SMTP failures (in a batch, only the rows they stopped)."""
    batch = [email_log_ids] if isinstance(email_log_ids, int) else list(email_log_ids)
    outcomes: dict[int, str] = {}
    retries: list[tuple[int, float]] = []
    for email_log_id in batch:
        outcome, retry_in = _send_one(self, email_log_id)
        outcomes[email_log_id] = outcome
        if retry_in is not None:
            retries.append((email_log_id, retry_in))
    if retries:
        again = [row_id for row_id, _ in retries]
        args = [again[0] if isinstance(email_log_ids, int) else again]
        raise self.retry(args=args, countdown=max(delay for _, delay in retries))
    return outcomes[email_log_ids] if isinstance(email_log_ids, int) else outcomes


def _send_one(task: Task, email_log_id: int) -> tuple[str, float | None]:
    """One row, in its own transaction: its outcome, and the seconds until its retry."""
    settings = get_settings()
    with transaction() as session:
        # The row stays locked while the server talks, so a duplicate task skips it.
        locked = session.execute(_LOCK_EMAIL, {"row_id": email_log_id}).one_or_none()
        if locked is None or locked.status != EmailStatus.PENDING:
            return "skipped", None
        row = _Delivery(**locked._asdict())
        row.attempts += 1
        retry_in = _attempt(task, row, settings)
        session.execute(
            _RECORD_OUTCOME,
            {
                "row_id": row.id,
                "new_attempts": row.attempts,
                "new_status": row.status,
                "new_subject": row.subject,
                "new_smtp_response": row.smtp_response,
                "new_last_error": row.last_error,
                "sent": row.sent,
                "retry_after": row.retry_after,
            },
        )
        status, error, template = row.status, row.last_error, row.template
    # Counted once the outcome is committed; a skipped duplicate task is no attempt.
    outcome = EmailOutcome.RETRIED if retry_in is not None else status  # sent or failed
    EMAILS.labels(email_template_label(template), outcome).inc()
    if retry_in is not None:
        log.warning(
            "email %s: temporary failure, retry in %ss: %s",
            email_log_id,
            retry_in,
            redact_text(error or ""),
        )
        return "retried", retry_in
    return status, None


def _attempt(task: Task, row: _Delivery, settings: Settings) -> float | None:
    """Send the row's email and record the outcome on it; the seconds until the retry when a
    temporary failure leaves retries, else None."""
    try:
        row.smtp_response = _render_and_deliver(row, settings)
    except DeliveryError as exc:
        row.last_error = str(exc)
        if exc.transient and task.request.retries < task.max_retries:
            retry_in = retry_delay(task.request.retries)
            row.retry_after = timedelta(seconds=int(retry_in))
            return retry_in
        _fail(row, exc)
    except Exception as exc:  # a template or data error: sending again will not help
        row.last_error = f"{type(exc).__name__}: {exc}"
        _fail(row, exc)
    else:
        row.status = EmailStatus.SENT
        row.sent = True
        row.last_error = None
        log.info("email %s (%s) sent to %s", row.id, row.template, _who(row.recipients))
    return None


def _render_and_deliver(row: _Delivery, settings: Settings) -> str:
    """The SMTP server's answer; raises DeliveryError, or whatever rendering raises."""
    if not settings.smtp_url:
        raise DeliveryError("SMTP_URL is not set", transient=False)
    rendered = _renderer().render(row.template, row.context)
    row.subject = rendered.subject
    message = build_message(
        rendered,
        sender=settings.email_from,
        recipients=row.recipients,
        idempotency_key=row.idempotency_key,
    )
    return deliver(SmtpConfig.from_url(settings.smtp_url), message, row.recipients)


def _fail(row: _Delivery, exc: BaseException) -> None:
    row.status = EmailStatus.FAILED
    detail = redact_text(row.last_error or "")
    # Reported below with its own tags: the logging integration must not send it again.
    log.error(
        "email %s (%s) to %s failed: %s",
        row.id,
        row.template,
        _who(row.recipients),
        detail,
        extra=REPORTED,
    )
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("email_template", row.template)
        scope.set_tag("email_key", redact_text(row.idempotency_key))
        sentry_sdk.capture_message(f"email {row.id} ({row.template}) failed: {detail}", "error")


def _who(recipients: list[str]) -> str:
    return ", ".join(redact_email(r) for r in recipients)


@app.task(name="emails.sweep_pending", ignore_result=True)
def sweep_pending_emails(stale_after_seconds: int | None = None) -> int:
    """Publish again pending emails whose message was lost (broker down after the commit)."""
    stale_after = stale_after_seconds
    if stale_after is None:
        stale_after = get_settings().sweep_stale_after_seconds
    with transaction() as session:
        rows = claim_stale_rows(
            session,
            model=EmailLog,
            pending=EmailLog.status == EmailStatus.PENDING,
            last_touched=func.greatest(EmailLog.created_at, EmailLog.enqueued_at),
            stale_after_seconds=stale_after,
            limit=SWEEP_BATCH_SIZE,
            returning=(EmailLog.id,),
        )
    for row in rows:
        app.send_task(SEND_TASK, args=[row.id])
    return len(rows)
