"""The daily task of evidence reminders; which disputes get one, and when, is
`billing.dispute_notices.remind_evidence_due`."""

from __future__ import annotations

from datetime import UTC, datetime

from billing.dispute_notices import remind_evidence_due
from db.session import transaction
from tasks.celery_app import app
from tasks.context import worker_context


@app.task(name="billing.remind_dispute_evidence", ignore_result=True)
def remind_dispute_evidence(now: float | None = None) -> int:
    """Queue the reminders due at `now` (Unix time; default: the present); how many."""
    ctx = worker_context()
    moment = datetime.fromtimestamp(now, UTC) if now is not None else ctx.now()
    with transaction() as session:
        return remind_evidence_due(session, ctx, now=moment)
