"""Who is acting: a console admin or the JSON admin API's bearer token. Every admin action
records its `admin_actions` row with this actor, in the action's own transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session

from db.admin_actions import record_action
from db.models import API_TOKEN_ACTOR, AdminActionKind


@dataclass(frozen=True, slots=True)
class Actor:
    name: str  # the admin's email, or `api-token`
    admin_id: int | None
    client_ip: str | None

    def record(
        self,
        session: Session,
        *,
        action: AdminActionKind,
        target: str | None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        record_action(
            session,
            actor=self.name,
            action=action,
            target=target,
            admin_id=self.admin_id,
            detail=detail,
            client_ip=self.client_ip,
        )


def client_ip(request: Request) -> str | None:
    """The peer's address; behind a proxy, uvicorn's `proxy_headers` has already put the
    forwarded client here (for the proxies `FORWARDED_ALLOW_IPS` trusts)."""
    return request.client.host if request.client else None


def api_token_actor(request: Request) -> Actor:
    """The JSON admin API's caller: the bearer token names no person."""
    return Actor(name=API_TOKEN_ACTOR, admin_id=None, client_ip=client_ip(request))
