"""Admin API over the reconciliation: start a run, read its report."""

from __future__ import annotations

import logging
from typing import Any, Literal

from celery import Celery
from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from api.deps import AdminDep, SessionDep, SettingsDep
from core.settings import Settings
from db.models import ReconciliationItem, ReconciliationRun, RunStatus
from db.reconciliation import find_run, finish_run, run_items, start_run
from tasks.celery_app import publisher_app
from tasks.reconciliation.run import RUN_STALE_AFTER
from tasks.reconciliation.task import TASK_NAME

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/admin", tags=["admin"], dependencies=[AdminDep])


class RunAccepted(BaseModel):
    run_id: int
    already_running: bool = Field(
        description="True when a run was already going: this is its id, and no other started."
    )


class ItemOut(BaseModel):
    kind: str = Field(description="`drift`, `adopted`, `missing_in_stripe` or `missed_event`.")
    object_id: str = Field(description="The Stripe subscription (or event) id.")
    customer_id: str | None
    field: str = Field(description="The drifted field, or `subscription` / `event`.")
    local_value: Any
    stripe_value: Any
    fixed: bool
    reason: str | None = Field(description="How it was fixed, or why not.")

    @classmethod
    def of(cls, row: ReconciliationItem) -> ItemOut:
        return cls(
            kind=row.kind,
            object_id=row.object_id,
            customer_id=row.stripe_customer_id,
            field=row.field,
            local_value=row.local_value,
            stripe_value=row.stripe_value,
            fixed=row.fixed,
            reason=row.reason,
        )


class RunOut(BaseModel):
    run_id: int
    status: Literal["running", "succeeded", "failed"]
    trigger: str
    checked: int = Field(description="Subscriptions compared.")
    drifted: int = Field(description="Subscriptions that differed (adopted ones included).")
    fixed: int
    phase: str = Field(description="Where the run is, or where a failed run stopped.")
    last_subscription_id: str | None
    error: str | None
    missed_events: str | None = Field(
        description="The catch-up of undelivered events: `done`, `unsupported` or `failed`."
    )
    missed_events_detail: str | None
    started_at: Any
    finished_at: Any
    items: list[ItemOut]

    @classmethod
    def of(cls, run: ReconciliationRun, items: list[ItemOut]) -> RunOut:
        return cls(
            run_id=run.id,
            status=run.status,
            trigger=run.trigger,
            checked=run.checked,
            drifted=run.drifted,
            fixed=run.fixed,
            phase=run.phase,
            last_subscription_id=run.last_subscription_id,
            error=run.error,
            missed_events=run.missed_events,
            missed_events_detail=run.missed_events_detail,
            started_at=run.started_at,
            finished_at=run.finished_at,
            items=items,
        )


@router.post("/reconcile", status_code=202, response_model=RunAccepted)
def start_reconciliation(
    request: Request, session: SessionDep, settings: SettingsDep
) -> RunAccepted:
    """Start a reconciliation run in a worker; while one is going, answer with its id."""
    if request.app.state.stripe is None:
        variable = settings.stripe_secret_key_variable
        raise HTTPException(503, f"Stripe is not configured: {variable} is not set.")
    run, created = start_run(session, trigger="api", stale_after=RUN_STALE_AFTER)
    session.commit()
    if created:
        try:
            _publisher(request, settings).send_task(TASK_NAME, args=[run.id])
        except Exception as exc:
            log.warning("reconciliation run %s could not be queued: %s", run.id, exc)
            finish_run(session, run_id=run.id, status=RunStatus.FAILED, error="not queued")
            session.commit()
            raise HTTPException(
                503, "The task queue is unavailable; try again.", {"Retry-After": "30"}
            ) from None
    return RunAccepted(run_id=run.id, already_running=not created)


def _publisher(request: Request, settings: Settings) -> Celery:
    """A Celery publisher on this app's broker settings, made on first use."""
    state = request.app.state
    if getattr(state, "reconciliation_publisher", None) is None:
        state.reconciliation_publisher = publisher_app(settings)
    return state.reconciliation_publisher


@router.get("/reconciliation-runs/{run_id}", response_model=RunOut)
def get_reconciliation_run(session: SessionDep, run_id: int) -> RunOut:
    """A run's status, counts and items: each difference, and whether it was fixed."""
    run = find_run(session, run_id=run_id)
    if run is None:
        raise HTTPException(404, f"No reconciliation run {run_id}.")
    return RunOut.of(run, [ItemOut.of(item) for item in run_items(session, run_id=run_id)])
