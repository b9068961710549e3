"""Admin API over the reconciliation: start a run, read its report."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from api.deps import AdminDep, NoNulParamsDep, PublisherDep, SessionDep, StripeDep
from api.schemas import VALIDATION_ERROR, RunAccepted, RunOut
from core.task_names import RECONCILE_SUBSCRIPTIONS
from db.models import RunStatus
from db.reconciliation import find_run, finish_run, run_items, start_run

log = logging.getLogger(__name__)

# A run id is a bigint: a larger number in the path is refused (422), not sent to PostgreSQL.
MAX_RUN_ID = 2**63 - 1

router = APIRouter(
    prefix="/api/admin",
    tags=["admin"],
    dependencies=[AdminDep, NoNulParamsDep],
    responses=VALIDATION_ERROR,
)


@router.post("/reconcile", status_code=202, response_model=RunAccepted)
def start_reconciliation(
    session: SessionDep, _stripe: StripeDep, publisher: PublisherDep
) -> RunAccepted:
    """Start a reconciliation run in a worker (503 while Stripe is off or has no key);
    while one is going, answer with its id."""
    run, created = start_run(session, trigger="api")
    session.commit()
    if created:
        try:
            publisher.send_task(RECONCILE_SUBSCRIPTIONS, args=[run.id])
        except Exception as exc:
            log.warning("reconciliation run %s could not be queued: %s", run.id, exc)
            finish_run(session, run_id=run.id, status=RunStatus.FAILED, error="not queued")
            session.commit()
            raise HTTPException(
                503, "The task queue is unavailable; try again.", {"Retry-After": "30"}
            ) from None
    return RunAccepted(run_id=run.id, already_running=not created)


@router.get("/reconciliation-runs/{run_id}", response_model=RunOut)
def get_reconciliation_run(
    session: SessionDep, run_id: Annotated[int, Path(ge=1, le=MAX_RUN_ID)]
) -> RunOut:
    """A run's status, counts and items: each difference, and whether it was fixed."""
    run = find_run(session, run_id=run_id)
    if run is None:
        raise HTTPException(404, f"No reconciliation run {run_id}.")
    return RunOut.of_run(run, run_items(session, run_id=run_id))
