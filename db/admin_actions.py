"""The `admin_actions` audit trail: who did what, when, to which object. Rows are appended in
the same transaction as the action, so an action and its record commit or vanish together."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import AdminAction, AdminActionKind


def record_action(
    session: Session,
    *,
    actor: str,
    action: AdminActionKind,
    target: str | None,
    admin_id: int | None = None,
    detail: dict[str, Any] | None = None,
    client_ip: str | None = None,
) -> AdminAction:
    """Append one audit row; `actor` is the admin's email or `api-token`."""
    row = AdminAction(
        admin_id=admin_id,
        actor=actor,
        action=action.value,
        target=target,
        detail=detail or {},
        client_ip=client_ip,
    )
    session.add(row)
    session.flush()
    return row


def recent_actions(
    session: Session,
    *,
    limit: int,
    before_id: int | None = None,
    target: str | None = None,
    action: str | None = None,
) -> Sequence[AdminAction]:
    """Newest first; `before_id` pages back, `target` and `action` filter."""
    query = select(AdminAction).order_by(AdminAction.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(AdminAction.id < before_id)
    if target:
        query = query.where(AdminAction.target == target)
    if action:
        query = query.where(AdminAction.action == action)
    return session.scalars(query).all()
