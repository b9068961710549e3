"""The FastAPI application: routes, and the resources the webhook hot path keeps open."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import redis.asyncio
import stripe
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from api import console
from api.body_limit import BodySizeLimit
from api.deps import publisher
from api.dispatch import EventDispatcher
from api.hot_path import BillingApi
from api.ingest import EventStore
from api.routes import (
    admin_customers,
    admin_disputes,
    admin_events,
    admin_invoices,
    admin_reconciliation,
    billing,
    health,
    metrics,
    plans,
    webhooks,
)
from api.stripe_errors import handle_stripe_error
from core.plans import load_catalogue
from core.sentry import init_sentry
from core.settings import Settings, get_settings
from core.stripe_client import make_stripe_client


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    init_sentry(settings, component="api")
    app = BillingApi(
        title="Stripe billing platform",
        summary="Stripe webhooks in, credits, subscriptions and disputes kept right.",
        version="0.1.0",
        lifespan=_lifespan(settings),
    )
    app.state.settings = settings
    app.state.stripe = make_stripe_client(settings)
    app.state.stripe_health = health.StripeHealthCheck(app.state.stripe, settings)
    app.state.catalogue = load_catalogue(settings)
    _add_routes(app)
    app.add_exception_handler(stripe.StripeError, handle_stripe_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    # Outside routing, so an oversized body is refused before auth and parsing; the webhook
    # reads its raw body under its own cap (WEBHOOK_MAX_BYTES).
    app.add_middleware(BodySizeLimit, exempt_paths=webhooks.WEBHOOK_PATHS)
    return app


def _lifespan(settings: Settings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """What the webhook hot path keeps open for the process's life: the event store, the
    dispatcher to the broker, and (on a Redis broker) a connection for readiness checks."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = EventStore(settings.libpq_url)
        await store.open()
        dispatcher = EventDispatcher(publisher(app))
        dispatcher.start()
        app.state.event_store = store
        app.state.dispatcher = dispatcher
        # Parsed once here rather than on every delivery.
        app.state.webhook_secrets = settings.webhook_secrets
        # Readiness asks a Redis broker with one PING on a kept connection; a RabbitMQ
        # broker is asked through the dispatcher (kombu has no async client).
        app.state.redis = (
            None
            if settings.broker_is_rabbitmq
            else redis.asyncio.from_url(
                settings.celery_broker_url, socket_connect_timeout=1, socket_timeout=1
            )
        )
        _freeze_startup_objects()
        try:
            yield
        finally:
            await store.close()
            await dispatcher.stop()
            if app.state.redis is not None:
                await app.state.redis.aclose()

    return lifespan


def _freeze_startup_objects() -> None:
    # Everything imported and opened so far lives as long as the process. Left to the
    # collector, those ~140k objects make every full collection a 60 ms stop of the
    # event loop (one every couple of seconds under webhook load: the p99). Frozen, a
    # full collection only walks what requests created since.
    import gc

    gc.collect()
    gc.freeze()


def _add_routes(app: FastAPI) -> None:
    # The webhook answers through plain routes matched before anything else (see
    # api.routes.webhooks); its FastAPI routes below only document it.
    for path in webhooks.WEBHOOK_PATHS:
        app.router.add_route(
            path, webhooks.receive_stripe_webhook, methods=["POST"], include_in_schema=False
        )
    for module in (
        webhooks,
        health,
        metrics,
        admin_events,
        admin_customers,
        admin_disputes,
        admin_invoices,
        admin_reconciliation,
        plans,
        billing,
    ):
        app.include_router(module.router)
    console.install(app)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    # A short reason, not the whole pydantic error tree.
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ()))
    return JSONResponse({"detail": f"{where}: {first.get('msg', 'invalid')}"}, status_code=422)
