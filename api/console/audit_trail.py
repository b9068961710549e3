"""The audit trail: every admin action, newest first, filtered by action or target."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.console.rendering import render
from api.console.security import ConsoleAdminDep
from api.deps import SessionDep
from db.admin_actions import recent_actions
from db.models import AdminActionKind

router = APIRouter(prefix="/console/audit", include_in_schema=False)

PAGE_SIZE = 100


@router.get("")
def audit(
    request: Request,
    me: ConsoleAdminDep,
    db: SessionDep,
    action: Annotated[str, Query(max_length=50)] = "",
    target: Annotated[str, Query(max_length=200)] = "",
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> Response:
    rows = recent_actions(
        db, limit=PAGE_SIZE, before_id=before, target=target.strip() or None, action=action or None
    )
    return render(
        request,
        "audit.html",
        {
            "me": me,
            "section": "audit",
            "actions": rows,
            "kinds": list(AdminActionKind),
            "filters": {"action": action, "target": target},
            "next_before": rows[-1].id if len(rows) == PAGE_SIZE else None,
        },
    )
