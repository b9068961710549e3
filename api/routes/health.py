"""Liveness, readiness and the Stripe health check (`/api/stripe/health`)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import stripe
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from core.settings import Settings
from core.stripe_client import stripe_unavailable_reason

logger = logging.getLogger(__name__)
router = APIRouter(tags=["health"])

READINESS_TIMEOUT_SECONDS = 1.5
CHECK_FAILED = "The Stripe health check failed."


class StripeHealth(BaseModel):
    status: str
    connected: bool
    account_id: str | None = None
    livemode: bool | None = None
    test_mode: bool | None = None
    webhook_configured: bool | None = None
    detail: str | None = None


class Readiness(BaseModel):
    status: str
    database: bool
    broker: bool


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(request: Request) -> JSONResponse:
    """The database and the broker both answer."""
    state = request.app.state
    database, broker = await asyncio.gather(_database_ok(state), _broker_ok(state))
    ready = database and broker
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "database": database, "broker": broker},
        status_code=200 if ready else 503,
    )


async def _database_ok(state: Any) -> bool:
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_SECONDS):
            async with state.event_store.pool.connection(timeout=READINESS_TIMEOUT_SECONDS) as c:
                await c.execute("SELECT 1")
        return True
    except Exception:
        return False


async def _broker_ok(state: Any) -> bool:
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_SECONDS):
            if state.redis is None:
                return await state.dispatcher.broker_answers()
            return bool(await state.redis.ping())
    except Exception:
        return False


class StripeHealthCheck:
    """The Stripe health answer, asked of Stripe at most once per HEALTH_CACHE_SECONDS.

    The endpoint is anonymous: each uncached answer holds a threadpool thread for up to the
    client's timeout and spends the account's rate limit. Good and bad answers are kept
    alike, and requests arriving while a check is in flight all wait for that one check."""

    def __init__(self, client: stripe.StripeClient | None, settings: Settings) -> None:
        self._client = client
        self._settings = settings
        self._answer: tuple[int, dict[str, Any]] | None = None
        self._fresh_until = 0.0
        self._in_flight: asyncio.Task[tuple[int, dict[str, Any]]] | None = None

    async def answer(self) -> tuple[int, dict[str, Any]]:
        """The HTTP status and the JSON body."""
        if self._answer is not None and time.monotonic() < self._fresh_until:
            return self._answer
        if self._in_flight is None:
            self._in_flight = asyncio.create_task(self._check())
        # Shielded: a caller that goes away does not cancel the check the others await.
        return await asyncio.shield(self._in_flight)

    async def _check(self) -> tuple[int, dict[str, Any]]:
        try:
            answer = await run_in_threadpool(self._ask_stripe)
            self._answer = answer
            self._fresh_until = time.monotonic() + self._settings.health_cache_seconds
            return answer
        finally:
            self._in_flight = None

    def _ask_stripe(self) -> tuple[int, dict[str, Any]]:
        if self._client is None:  # the settings gave no client: say why
            return _stripe_error(stripe_unavailable_reason(self._settings) or CHECK_FAILED)
        try:
            # A probe reports what Stripe says now; the client's retries would only hold the
            # thread (and every waiting request) for up to three timeouts.
            account = self._client.v1.accounts.retrieve_current(options={"max_network_retries": 0})
        except stripe.AuthenticationError:
            return _stripe_error("Stripe rejected the configured secret key.")
        except stripe.APIConnectionError:
            return _stripe_error("Stripe could not be reached.")
        except stripe.StripeError as exc:
            return _stripe_error(f"Stripe answered with an error (HTTP {exc.http_status}).")
        except Exception:  # an unexpected failure is a 503 too: this endpoint never answers 500
            logger.exception("The Stripe health check failed")
            return _stripe_error(CHECK_FAILED)
        test_mode = self._settings.stripe_test_mode
        return 200, {
            "status": "ok",
            "connected": True,
            "account_id": account.id,
            "livemode": not test_mode,
            "test_mode": test_mode,
            "webhook_configured": bool(self._settings.webhook_secrets),
        }


def _stripe_error(detail: str) -> tuple[int, dict[str, Any]]:
    return 503, {"status": "error", "detail": detail, "connected": False}


@router.get(
    "/api/stripe/health", response_model=StripeHealth, responses={503: {"model": StripeHealth}}
)
@router.get("/api/billing/health", response_model=StripeHealth, include_in_schema=False)
async def stripe_health(request: Request) -> JSONResponse:
    """Whether Stripe answers with the configured key (`Account.retrieve`, at most once per
    HEALTH_CACHE_SECONDS); no key is shown."""
    status, body = await request.app.state.stripe_health.answer()
    return JSONResponse(body, status_code=status)
