"""The daily reminder of evidence deadlines: every dispute still waiting for a response is
brought to the admins 5 days and 1 day before its `due_by`, once per dispute per reminder."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from core.settings import get_settings
from db.disputes import awaiting_response
from db.session import transaction
from tasks.celery_app import app
from tasks.emails import queue_email
from tasks.events.handlers.disputes import dashboard_url, describe_customer

REMINDERS = (("1d", timedelta(days=1)), ("5d", timedelta(days=5)))  # most urgent first


@app.task(name="billing.remind_dispute_evidence", ignore_result=True)
def remind_dispute_evidence(now: float | None = None) -> int:
    """Queue the reminders due at `now` (Unix time; default: the present); how many."""
    moment = datetime.fromtimestamp(now, UTC) if now is not None else datetime.now(UTC)
    recipients = list(get_settings().admin_addresses)
    queued = 0
    with transaction() as session:
        for dispute in awaiting_response(session, due_before=moment + REMINDERS[-1][1], now=moment):
            assert dispute.evidence_due_by is not None
            left = dispute.evidence_due_by - moment
            # A dispute first seen inside the last day gets only the 1-day reminder.
            name = next(name for name, window in REMINDERS if left <= window)
            if not recipients:
                continue
            queued += (
                queue_email(
                    session,
                    key=f"dispute-evidence-due:{dispute.stripe_dispute_id}:{name}",
                    template="dispute_evidence_due",
                    recipients=recipients,
                    context={
                        "dispute_id": dispute.stripe_dispute_id,
                        "days_left": max(1, math.ceil(left / timedelta(days=1))),
                        "amount": dispute.amount,
                        "currency": dispute.currency,
                        "reason": dispute.reason or "unknown",
                        "status": dispute.status,
                        "customer": describe_customer(session, dispute),
                        "due_by": int(dispute.evidence_due_by.timestamp()),
                        "dashboard_url": dashboard_url(dispute),
                    },
                )
                is not None
            )
    return queued
