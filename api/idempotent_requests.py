"""Requests made once per `Idempotency-Key`: the first answer is kept, a retry gets it again
(header `Idempotent-Replayed: true`), and the same key with another body is refused (409).

A route takes `IdempotentDep`, asks `replay(operation, request)` for the earlier answer
before doing anything, and ends with `keep(answer)` in the transaction of its effects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from api.auth import UserDep
from api.deps import SessionDep
from db import idempotency

MAX_KEY_LENGTH = 255
REPLAYED_HEADER = "Idempotent-Replayed"


@dataclass(frozen=True, slots=True)
class Answer:
    status_code: int
    body: dict[str, Any]
    replayed: bool = False

    def response(self) -> JSONResponse:
        headers = {REPLAYED_HEADER: "true"} if self.replayed else {}
        return JSONResponse(self.body, status_code=self.status_code, headers=headers)


def idempotency_key(
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Retrying with the same key repeats nothing: the first answer is "
            "returned. Up to 255 characters.",
        ),
    ] = None,
) -> str | None:
    """The request's `Idempotency-Key` header, if any; 400 when it is empty, too long or not
    printable."""
    if key is not None and not (0 < len(key) <= MAX_KEY_LENGTH and key.isprintable()):
        raise HTTPException(
            400, "The Idempotency-Key header must be 1 to 255 printable characters."
        )
    return key


IdempotencyKeyDep = Annotated[str | None, Depends(idempotency_key)]


class Idempotent:
    """One user's request under its `Idempotency-Key` (`key`, None without the header)."""

    def __init__(self, session: Session, *, user_id: str, key: str | None) -> None:
        self.session = session
        self.user_id = user_id
        self.key = key
        self._operation: str | None = None
        self._request_hash: str | None = None

    def replay(self, operation: str, request: dict[str, Any]) -> JSONResponse | None:
        """The answer this key already had for `operation`, or None for a first request (or
        one without a key). The key stays held until the transaction ends, so requests with
        one key wait for each other and only the first does the work; the same key with
        another `request` body is 409."""
        self._operation = operation
        self._request_hash = idempotency.request_hash(request)
        if self.key is None:
            return None
        earlier = idempotency.claim_key(
            self.session, user_id=self.user_id, operation=operation, key=self.key
        )
        if earlier is None:
            return None
        if earlier.request_hash != self._request_hash:
            raise HTTPException(
                409, "This Idempotency-Key was already used with a different request body."
            )
        return Answer(earlier.status_code, earlier.response, replayed=True).response()

    def keep(self, answer: Answer) -> JSONResponse:
        """Store the first answer under the key (when there is one), in the caller's
        transaction with its effects, and make the response of it."""
        if self.key is not None:
            assert self._operation is not None and self._request_hash is not None, "replay first"
            idempotency.store_answer(
                self.session,
                user_id=self.user_id,
                operation=self._operation,
                key=self.key,
                request_hash=self._request_hash,
                status_code=answer.status_code,
                response=answer.body,
            )
        return answer.response()


def idempotent_request(user: UserDep, session: SessionDep, key: IdempotencyKeyDep) -> Idempotent:
    return Idempotent(session, user_id=user.id, key=key)


IdempotentDep = Annotated[Idempotent, Depends(idempotent_request)]
