"""The email outbox: a row per email, written in the caller's transaction under its key."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.after_commit import after_commit
from db.models import EmailLog

log = logging.getLogger(__name__)


def queue_email(
    session: Session,
    *,
    key: str,
    template: str,
    recipients: list[str],
    context: dict[str, Any],
    send: Callable[[int], None] | None,
) -> int | None:
    """Store an email under its idempotency key; None if this key was queued before. Once the
    caller commits, `send` gets the row id (never before: a rolled-back email is no email);
    without `send`, or if it fails, the email sweep sends the row later."""
    row_id = session.execute(
        _QUEUE_EMAIL,
        {"key": key, "new_template": template, "to": recipients, "new_context": context},
    ).scalar_one_or_none()
    if row_id is not None and send is not None:
        after_commit(session, lambda: _send(send, row_id))
    return row_id


# Built once, on the table (it loads no object): every renewal queues its receipt
# (docs/decisions/0007).
_EMAILS = EmailLog.__table__
_QUEUE_EMAIL = (
    insert(_EMAILS)
    .values(
        idempotency_key=bindparam("key"),
        template=bindparam("new_template"),
        recipients=bindparam("to"),
        context=bindparam("new_context"),
    )
    .on_conflict_do_nothing(index_elements=[_EMAILS.c.idempotency_key])
    .returning(_EMAILS.c.id)
)


def _send(send: Callable[[int], None], row_id: int) -> None:
    try:
        send(row_id)
    except Exception as exc:  # the row is pending; the email sweep sends it later
        log.warning("email %s left for the sweep: %s", row_id, exc)
