"""The admin operations the JSON admin API and the console both perform: replay an event,
answer a dispute, start a reconciliation run. Each records its audit row in the caller's
transaction; the caller commits, then publishes where a task must run."""

from __future__ import annotations

import logging

from celery import Celery
from sqlalchemy.orm import Session

from api.audit import Actor
from billing import dispute_actions
from billing.context import BillingContext
from billing.replay import mark_for_replay
from core.task_names import RECONCILE_SUBSCRIPTIONS, event_task_name
from db.models import (
    AdminActionKind,
    Dispute,
    EventStatus,
    ReconciliationRun,
    RunStatus,
    WebhookEvent,
)
from db.reconciliation import finish_run, start_run

log = logging.getLogger(__name__)


class QueueUnavailable(RuntimeError):
    """The broker refused the task; the row says so and the caller may answer 503."""


def replay_event(
    session: Session, *, publisher: Celery, live: bool, event_id: str, actor: Actor
) -> WebhookEvent | None:
    """Mark a stored event for processing again, record it, commit, and publish its task;
    None for an unknown event. A publish that fails leaves the row `queued` for the sweep."""
    row = mark_for_replay(session, stripe_event_id=event_id, live=live)
    if row is None:
        return None
    actor.record(
        session, action=AdminActionKind.REPLAY, target=event_id, detail={"status": row.status}
    )
    session.commit()
    if row.status == EventStatus.QUEUED:
        try:
            publisher.send_task(event_task_name(row.type), args=[row.id])
        except Exception as exc:  # the row is `queued`; the sweep publishes it later
            log.warning("replay of %s left for the sweep: %s", event_id, exc)
    return row


def submit_evidence(
    session: Session,
    ctx: BillingContext,
    *,
    dispute_id: str,
    evidence: dict[str, str],
    submit: bool,
    actor: Actor,
) -> Dispute:
    """Stage (or submit) text evidence through Stripe, record it and commit. The billing
    rules' refusals (`DisputeNotFound`, `DisputeClosed`, `StripeRequired`) propagate."""
    row = dispute_actions.submit_evidence(
        session, ctx, dispute_id=dispute_id, evidence=evidence, submit=submit
    )
    action = AdminActionKind.EVIDENCE_SUBMITTED if submit else AdminActionKind.EVIDENCE_STAGED
    actor.record(
        session,
        action=action,
        target=dispute_id,
        detail={"fields": sorted(evidence), "status": row.status},
    )
    session.commit()
    return row


def submit_draft(
    session: Session, ctx: BillingContext, *, dispute_id: str, actor: Actor
) -> Dispute:
    """Submit the platform's evidence draft (with Visa CE 3.0's enhanced evidence when the
    dispute qualifies), record it and commit. Refusals, `SmartDisputesInCharge` among them,
    propagate."""
    row = dispute_actions.submit_draft(session, ctx, dispute_id=dispute_id)
    actor.record(
        session,
        action=AdminActionKind.EVIDENCE_SUBMITTED,
        target=dispute_id,
        detail={"draft": True, "status": row.status},
    )
    session.commit()
    return row


def accept_dispute(
    session: Session, ctx: BillingContext, *, dispute_id: str, actor: Actor
) -> Dispute:
    """Concede the dispute through Stripe, record it and commit."""
    row = dispute_actions.accept_dispute(session, ctx, dispute_id=dispute_id)
    actor.record(
        session,
        action=AdminActionKind.DISPUTE_ACCEPTED,
        target=dispute_id,
        detail={"status": row.status},
    )
    session.commit()
    return row


def start_reconciliation(
    session: Session, *, publisher: Celery, trigger: str, actor: Actor
) -> tuple[ReconciliationRun, bool]:
    """Start a run in a worker and record it; while one is going, that run (and False)."""
    run, created = start_run(session, trigger=trigger)
    actor.record(
        session,
        action=AdminActionKind.RECONCILIATION_STARTED,
        target=f"run:{run.id}",
        detail={"already_running": not created},
    )
    session.commit()
    if created:
        try:
            publisher.send_task(RECONCILE_SUBSCRIPTIONS, args=[run.id])
        except Exception as exc:
            log.warning("reconciliation run %s could not be queued: %s", run.id, exc)
            finish_run(session, run_id=run.id, status=RunStatus.FAILED, error="not queued")
            session.commit()
            raise QueueUnavailable("The task queue is unavailable; try again.") from None
    return run, created
