"""Admin API over the reconciliation: start a run, read its report."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request

from api import operations
from api.audit import api_token_actor
from api.deps import AdminDep, NoNulParamsDep, PublisherDep, SessionDep, StripeDep
from api.schemas import VALIDATION_ERROR, RunAccepted, RunOut
from db.reconciliation import find_run, run_items

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
    request: Request, session: SessionDep, _stripe: StripeDep, publisher: PublisherDep
) -> RunAccepted:
    """Start a reconciliation run in a worker (503 while Stripe is off or has no key);
    while one is going, answer with its id."""
    try:
        run, created = operations.start_reconciliation(
            session, publisher=publisher, trigger="api", actor=api_token_actor(request)
        )
    except operations.QueueUnavailable as exc:
        raise HTTPException(503, str(exc), {"Retry-After": "30"}) from None
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
