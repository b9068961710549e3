"""What the admins are told about disputes: one alert when a dispute opens (again if an
inquiry becomes a chargeback), one when it closes, and reminders of evidence deadlines
5 days and 1 day before `due_by`, once per dispute per reminder."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from billing.context import BillingContext
from billing.notices import notify_admins
from core.redaction import redact_email
from core.stripe_objects import unix_time
from db.disputes import awaiting_response
from db.emails import queue_email
from db.models import Account, Dispute

REMINDERS = (("1d", timedelta(days=1)), ("5d", timedelta(days=5)))  # most urgent first


def alert_admins(session: Session, ctx: BillingContext, dispute: Dispute, *, closed: bool) -> None:
    """The alert of the dispute's current state, once per key: opened (per kind), or closed."""
    context: dict[str, Any] = {
        **describe(session, dispute),
        "status": dispute.status,
    }
    if closed:
        outcome = dispute.status if dispute.status in ("won", "lost") else "closed"
        key, template = f"dispute-closed:{dispute.stripe_dispute_id}", "dispute_closed"
        context["outcome"] = outcome
    else:
        kind = "inquiry" if dispute.is_inquiry else "chargeback"
        key, template = f"dispute-opened:{dispute.stripe_dispute_id}:{kind}", "dispute_opened"
        context.update(
            is_inquiry=dispute.is_inquiry,
            unlinked=not dispute.linked and not dispute.is_inquiry,
            due_by=unix_time(dispute.evidence_due_by),
        )
    notify_admins(session, ctx, key=key, template=template, context=context)


def remind_evidence_due(session: Session, ctx: BillingContext, *, now: datetime) -> int:
    """Queue the evidence reminders due at `now` for every dispute nobody has answered; how
    many were new."""
    recipients = list(ctx.settings.admin_addresses)
    queued = 0
    for dispute in awaiting_response(session, due_before=now + REMINDERS[-1][1], now=now):
        assert dispute.evidence_due_by is not None
        left = dispute.evidence_due_by - now
        # A dispute first seen inside the last day gets only the 1-day reminder.
        name = next(name for name, window in REMINDERS if left <= window)
        if not recipients:
            continue
        row_id = queue_email(
            session,
            key=f"dispute-evidence-due:{dispute.stripe_dispute_id}:{name}",
            template="dispute_evidence_due",
            recipients=recipients,
            context={
                **describe(session, dispute),
                "days_left": max(1, math.ceil(left / timedelta(days=1))),
                "status": dispute.status,
                "due_by": int(dispute.evidence_due_by.timestamp()),
            },
            send=ctx.send_email,
        )
        queued += row_id is not None
    return queued


def describe(session: Session, dispute: Dispute) -> dict[str, Any]:
    """What every admin email says of the dispute."""
    return {
        "dispute_id": dispute.stripe_dispute_id,
        "amount": dispute.amount,
        "currency": dispute.currency,
        "reason": dispute.reason or "unknown",
        "customer": describe_customer(session, dispute),
        "dashboard_url": dashboard_url(dispute),
    }


def describe_customer(session: Session, dispute: Dispute) -> str:
    account = session.get(Account, dispute.account_id) if dispute.account_id else None
    if account is None:
        return "unknown (unlinked)"
    email = f" ({redact_email(account.email)})" if account.email else ""
    return f"{account.stripe_customer_id}{email}"


def dashboard_url(dispute: Dispute) -> str:
    mode = "" if dispute.livemode else "test/"
    return f"https://dashboard.stripe.com/{mode}disputes/{dispute.stripe_dispute_id}"
