"""Keep `webhook_events` partitioned ahead of time: a daily job creates the coming months'
partitions, so rows never land in the DEFAULT partition while maintenance runs."""

from __future__ import annotations

import logging

from db.session import transaction
from db.webhook_events import ensure_partitions
from tasks.celery_app import app

log = logging.getLogger(__name__)


@app.task(name="billing.maintain_event_partitions", ignore_result=True)
def maintain_event_partitions() -> list[str]:
    """Create this month's and the next months' partitions where missing."""
    with transaction() as session:
        created = ensure_partitions(session)
    if created:
        log.info("webhook_events: partitions created for %s", ", ".join(created))
    return created
