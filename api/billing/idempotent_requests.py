"""Requests made once per `Idempotency-Key`: the first answer is kept, a retry gets it again
(`replayed`), and the same key with another body is refused."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from db import idempotency


@dataclass(frozen=True, slots=True)
class Answer:
    status_code: int
    body: dict[str, Any]
    replayed: bool = False


class KeyReused(Exception):
    """The key was used before with another request body."""


def earlier_answer(
    session: Session, *, user_id: str, operation: str, key: str, request: dict[str, Any]
) -> Answer | None:
    """Hold the key until the transaction ends; the answer it already had, if any. Requests
    with one key wait for each other, so only the first does the work."""
    earlier = idempotency.claim_key(session, user_id=user_id, operation=operation, key=key)
    if earlier is None:
        return None
    if earlier.request_hash != idempotency.request_hash(request):
        raise KeyReused(key)
    return Answer(earlier.status_code, earlier.response, replayed=True)


def keep_answer(
    session: Session,
    *,
    user_id: str,
    operation: str,
    key: str,
    request: dict[str, Any],
    answer: Answer,
) -> None:
    """Store the first answer under the key, in the caller's transaction with its effects."""
    idempotency.store_answer(
        session,
        user_id=user_id,
        operation=operation,
        key=key,
        request_hash=idempotency.request_hash(request),
        status_code=answer.status_code,
        response=answer.body,
    )
