"""Reconciliation: the runs and their drift items; start a run, or a dry run whose report
comes back as the dry-run task's result."""

from __future__ import annotations

from typing import Annotated

from celery.result import AsyncResult
from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import RedirectResponse, Response

from api import operations
from api.console.rendering import render
from api.console.security import CheckedFormDep, ConsoleAdminDep
from api.deps import PublisherDep, SessionDep, SettingsDep
from core.stripe_client import stripe_unavailable_reason
from core.task_names import RECONCILE_DRY_RUN
from db import console_reads
from db.models import AdminActionKind, RunStatus
from db.reconciliation import find_run, run_items
from db.reconciliation_report import Report

router = APIRouter(prefix="/console/reconciliation", include_in_schema=False)

MAX_RUN_ID = 2**63 - 1
TASK_ID = r"^[0-9a-f-]{36}$"  # Celery's task ids are UUIDs


@router.get("")
def runs(request: Request, me: ConsoleAdminDep, db: SessionDep, settings: SettingsDep) -> Response:
    return render(
        request,
        "reconciliation/runs.html",
        {
            "me": me,
            "section": "reconciliation",
            "runs": console_reads.recent_runs(db),
            "stripe_off": stripe_unavailable_reason(settings),
            "error": request.query_params.get("error")
            and "The task queue is unavailable; try again.",
        },
    )


@router.get("/runs/{run_id}")
def run_detail(
    request: Request,
    me: ConsoleAdminDep,
    db: SessionDep,
    run_id: Annotated[int, Path(ge=1, le=MAX_RUN_ID)],
) -> Response:
    run = find_run(db, run_id=run_id)
    if run is None:
        raise HTTPException(404, f"No reconciliation run {run_id}.")
    report = Report.of_run(run, run_items(db, run_id=run_id))
    return render(
        request,
        "reconciliation/run.html",
        {
            "me": me,
            "section": "reconciliation",
            "report": report,
            "run": run,
            "running": run.status == RunStatus.RUNNING,
            "self_url": f"/console/reconciliation/runs/{run_id}",
        },
    )


@router.post("/start")
def start(
    me: CheckedFormDep, db: SessionDep, settings: SettingsDep, publisher: PublisherDep
) -> Response:
    if reason := stripe_unavailable_reason(settings):
        raise HTTPException(503, reason)
    try:
        run, _ = operations.start_reconciliation(
            db, publisher=publisher, trigger="console", actor=me.actor
        )
    except operations.QueueUnavailable:
        return RedirectResponse("/console/reconciliation?error=queue", status_code=303)
    return RedirectResponse(f"/console/reconciliation/runs/{run.id}", status_code=303)


@router.post("/dry-run")
def start_dry_run(
    me: CheckedFormDep, db: SessionDep, settings: SettingsDep, publisher: PublisherDep
) -> Response:
    if reason := stripe_unavailable_reason(settings):
        raise HTTPException(503, reason)
    try:
        result = publisher.send_task(RECONCILE_DRY_RUN)
    except Exception:
        return RedirectResponse("/console/reconciliation?error=queue", status_code=303)
    me.actor.record(
        db, action=AdminActionKind.RECONCILIATION_DRY_RUN, target=f"dry-run:{result.id}"
    )
    db.commit()
    return RedirectResponse(f"/console/reconciliation/dry-runs/{result.id}", status_code=303)


@router.get("/dry-runs/{task_id}")
def dry_run_detail(
    request: Request,
    me: ConsoleAdminDep,
    publisher: PublisherDep,
    task_id: Annotated[str, Path(pattern=TASK_ID)],
) -> Response:
    result = AsyncResult(task_id, app=publisher)
    report = None
    if result.successful() and isinstance(result.result, dict):
        report = Report.model_validate(result.result)
    failed = result.failed()
    return render(
        request,
        "reconciliation/run.html",
        {
            "me": me,
            "section": "reconciliation",
            "report": report,
            "run": None,
            "running": report is None and not failed,
            "task_failed": failed,
            "self_url": f"/console/reconciliation/dry-runs/{task_id}",
        },
    )
