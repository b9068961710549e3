"""Liveness, readiness and the audit's Stripe health check."""

from __future__ import annotations

import asyncio
from typing import Any

import stripe
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.deps import SettingsDep

router = APIRouter(tags=["health"])

READINESS_TIMEOUT_SECONDS = 1.5


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
            return bool(await state.redis.ping())
    except Exception:
        return False


def _stripe_error(detail: str) -> JSONResponse:
    return JSONResponse({"status": "error", "detail": detail, "connected": False}, status_code=503)


@router.get(
    "/api/stripe/health", response_model=StripeHealth, responses={503: {"model": StripeHealth}}
)
@router.get("/api/billing/health", response_model=StripeHealth, include_in_schema=False)
def stripe_health(request: Request, settings: SettingsDep) -> JSONResponse:
    """Whether Stripe answers with the configured key (`Account.retrieve`); no key is shown."""
    client: stripe.StripeClient | None = request.app.state.stripe
    if client is None:
        return _stripe_error("Stripe is not configured (disabled, or no secret key for this mode).")
    try:
        account = client.v1.accounts.retrieve_current()
    except stripe.AuthenticationError:
        return _stripe_error("Stripe rejected the configured secret key.")
    except stripe.APIConnectionError:
        return _stripe_error("Stripe could not be reached.")
    except stripe.StripeError as exc:
        return _stripe_error(f"Stripe answered with an error (HTTP {exc.http_status}).")
    return JSONResponse(
        {
            "status": "ok",
            "connected": True,
            "account_id": account.id,
            "livemode": not settings.stripe_test_mode,
            "test_mode": settings.stripe_test_mode,
            "webhook_configured": bool(settings.webhook_secrets),
        }
    )
