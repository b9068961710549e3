"""Typed SQLAlchemy models of the platform's tables."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Identity,
    Index,
    Integer,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class EventStatus(enum.StrEnum):
    RECEIVED = "received"  # stored; no task message published yet (the row is the outbox)
    QUEUED = "queued"  # a `stripe.<type>` message was published, or a retry is scheduled
    PROCESSING = "processing"  # a worker claimed it; the claim dies with the worker's connection
    PROCESSED = "processed"  # the handler's effects and this status committed together
    FAILED = "failed"  # a permanent error, or retries ran out; `billing replay` runs it again
    IGNORED = "ignored"  # a type the platform does not handle; kept for the audit


PENDING_STATUSES = (EventStatus.RECEIVED, EventStatus.QUEUED, EventStatus.PROCESSING)
_status_list = ", ".join(f"'{s.value}'" for s in EventStatus)
_pending_list = ", ".join(f"'{s.value}'" for s in PENDING_STATUSES)


class WebhookEvent(Base):
    """The audit row of one Stripe event. Never deleted: it is also the outbox of its task."""

    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    stripe_event_id: Mapped[str] = mapped_column(Text, unique=True)
    type: Mapped[str] = mapped_column(Text)
    api_version: Mapped[str | None] = mapped_column(Text)
    livemode: Mapped[bool]
    account: Mapped[str | None] = mapped_column(Text)  # the Connect account, when there is one
    stripe_created: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(Text, server_default=EventStatus.RECEIVED.value)
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # When the row was last handed to the broker and last claimed by a worker: the sweep
    # re-enqueues pending rows whose newest of these is older than SWEEP_STALE_AFTER_SECONDS.
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(f"status IN ({_status_list})", name="ck_webhook_events_status"),
        Index("ix_webhook_events_status_id", "status", "id"),
        Index("ix_webhook_events_type_id", "type", "id"),
        Index(
            "ix_webhook_events_pending",
            "id",
            postgresql_where=text(f"status IN ({_pending_list})"),
        ),
    )


class EmailStatus(enum.StrEnum):
    PENDING = "pending"  # stored; `emails.send` has not delivered it yet
    SENT = "sent"  # the SMTP server accepted it
    FAILED = "failed"  # a permanent refusal, or retries ran out


class EmailLog(Base):
    """One email the platform decided to send. The idempotency key makes a second request
    for the same email (a retried task, a duplicate event) a no-op."""

    __tablename__ = "email_log"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(Text, unique=True)  # `receipt:in_...`
    template: Mapped[str] = mapped_column(Text)
    recipients: Mapped[list[str]] = mapped_column(JSONB)
    context: Mapped[dict[str, Any]] = mapped_column(JSONB)
    subject: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default=EmailStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)
    smtp_response: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'sent', 'failed')", name="ck_email_log_status"
        ),
        Index("ix_email_log_pending", "id", postgresql_where=text("status = 'pending'")),
    )
