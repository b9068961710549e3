"""Stripe's errors as clear HTTP answers for the host application.

A card error is the user's to fix (402, with Stripe's message for the user); an invalid
request is 400 with Stripe's message; a rate limit, a lost connection or Stripe's own failure
is 503 with `Retry-After`; a key Stripe refuses is the operator's to fix and is never shown.
Nothing that looks like a key or a card number leaves in an answer or a log line."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import stripe
from fastapi import Request
from fastapi.responses import JSONResponse

from core.redaction import redact_for_client

log = logging.getLogger("billing.api.stripe")

# Seconds a client should wait before trying again.
RATE_LIMITED_RETRY_AFTER = 2
UNREACHABLE_RETRY_AFTER = 5


@dataclass(frozen=True, slots=True)
class ErrorAnswer:
    status: int
    reason: str
    retry_after: int | None = None  # seconds, for errors that pass
    operator_error: bool = False  # the platform's configuration is wrong, not the request


def stripe_error_answer(exc: stripe.StripeError) -> ErrorAnswer:
    """The answer to give for an error of a Stripe call."""
    message = redact_for_client(exc.user_message or "") or None
    if isinstance(exc, stripe.CardError):
        return ErrorAnswer(402, message or "The card was declined.")
    if isinstance(exc, stripe.IdempotencyError):
        return ErrorAnswer(409, "This Idempotency-Key was already used for another request.")
    if isinstance(exc, stripe.InvalidRequestError):
        return ErrorAnswer(400, message or "Stripe refused the request.")
    if isinstance(exc, stripe.RateLimitError):
        reason = "Stripe is rate limiting requests; try again shortly."
        return ErrorAnswer(503, reason, retry_after=RATE_LIMITED_RETRY_AFTER)
    if isinstance(exc, stripe.APIConnectionError):
        reason = "Stripe could not be reached; try again shortly."
        return ErrorAnswer(503, reason, retry_after=UNREACHABLE_RETRY_AFTER)
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        reason = "Stripe refused the platform's API key; the operator has been told."
        return ErrorAnswer(503, reason, operator_error=True)
    reason = "Stripe failed to answer; try again shortly."
    return ErrorAnswer(503, reason, retry_after=UNREACHABLE_RETRY_AFTER)


async def handle_stripe_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, stripe.StripeError):  # registered for StripeError only
        raise exc
    answer = stripe_error_answer(exc)
    # The class, code and request id find the call in Stripe's dashboard; the message
    # stays out (it can quote a masked key or what the user typed).
    log_call = log.error if answer.operator_error else log.warning
    log_call(
        "stripe %s on %s %s: http %s code %s request %s",
        type(exc).__name__,
        request.method,
        request.url.path,
        exc.http_status,
        exc.code,
        exc.request_id,
    )
    headers = {"Retry-After": str(answer.retry_after)} if answer.retry_after else {}
    return JSONResponse({"detail": answer.reason}, status_code=answer.status, headers=headers)
