"""The first answer to a user's request under an `Idempotency-Key`, kept so that a retry gets
the same answer and the same key with another body is refused."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.locks import advisory_lock
from db.models import IdempotentRequest


def request_hash(body: dict[str, Any]) -> str:
    """A fingerprint of the request body, the same whatever the order of its keys."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def claim_key(
    session: Session, *, user_id: str, operation: str, key: str
) -> IdempotentRequest | None:
    """Hold the key until the transaction ends and return its stored answer, if any. Requests
    with one key wait for each other, so only the first one does the work."""
    advisory_lock(session, f"idempotency:{user_id}:{operation}:{key}")
    return session.scalar(
        select(IdempotentRequest).where(
            IdempotentRequest.user_id == user_id,
            IdempotentRequest.operation == operation,
            IdempotentRequest.key == key,
        )
    )


def store_answer(
    session: Session,
    *,
    user_id: str,
    operation: str,
    key: str,
    request_hash: str,
    status_code: int,
    response: dict[str, Any],
) -> None:
    session.add(
        IdempotentRequest(
            user_id=user_id,
            operation=operation,
            key=key,
            request_hash=request_hash,
            status_code=status_code,
            response=response,
        )
    )
    session.flush()
