"""Work that waits for the caller's transaction: run once it commits, forgotten if it rolls
back.

A listener per callback (`event.listen(session, "after_commit", ..., once=True)`) outlives
its transaction: SQLAlchemy's `once` only stops it from running twice, so a callback noted in
a transaction that rolled back would run at the session's next commit, and a function
listened again after running once never runs again. A worker runs a batch of events on one
session, one transaction after the other, so the callbacks belong to the transaction instead:
a list in `session.info`, run and emptied on commit, emptied on rollback.

A callback runs in the context it was noted in (`contextvars`): the log fields and Sentry
scope of the event whose work noted it, though the commit comes after the whole batch.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

_PENDING = "after_commit_callbacks"


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run `callback` once the session's current transaction commits (never if it rolls
    back). A callback that raises is logged; the others still run."""
    if not event.contains(session, "after_commit", _run):
        event.listen(session, "after_commit", _run)
        event.listen(session, "after_rollback", _forget)
    session.info.setdefault(_PENDING, []).append((contextvars.copy_context(), callback))


def _run(session: Session) -> None:
    for context, callback in session.info.pop(_PENDING, []):
        try:
            context.run(callback)
        except Exception:  # committed is committed: what the callback was for waits for a sweep
            log.exception("after-commit work failed")


def _forget(session: Session) -> None:
    session.info.pop(_PENDING, None)
