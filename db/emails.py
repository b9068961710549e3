"""The email outbox: a row per email, written in the caller's transaction under its key."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.models import EmailLog

log = logging.getLogger(__name__)

_AFTER_COMMIT = "emails_to_send"


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
        insert(EmailLog)
        .values(idempotency_key=key, template=template, recipients=recipients, context=context)
        .on_conflict_do_nothing(index_elements=[EmailLog.idempotency_key])
        .returning(EmailLog.id)
    ).scalar_one_or_none()
    if row_id is not None and send is not None:
        pending: list[tuple[int, Callable[[int], None]]] = session.info.setdefault(
            _AFTER_COMMIT, []
        )
        if not pending:
            event.listen(session, "after_commit", _send_after_commit, once=True)
            event.listen(session, "after_rollback", _forget_after_rollback, once=True)
        pending.append((row_id, send))
    return row_id


def _send_after_commit(session: Session) -> None:
    for row_id, send in session.info.pop(_AFTER_COMMIT, []):
        try:
            send(row_id)
        except Exception as exc:  # the row is pending; the email sweep sends it later
            log.warning("email %s left for the sweep: %s", row_id, exc)


def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_AFTER_COMMIT, None)
