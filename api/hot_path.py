"""The application class: Stripe's webhook deliveries go straight to their endpoint, every
other request through the whole stack.

Sentry's Starlette integration wraps every request in an ASGI middleware of its own, built
afresh per request (an isolation scope, a transaction object even when nothing is sampled,
an event processor holding the request's headers), and wraps each middleware and endpoint
again. On the webhook that was most of the price of running with a DSN set: about half the
throughput of the same API without one (issue 15). The delivery needs none of it: the
endpoint answers every bad input itself, and a storage failure is reported from the event
store's writer, in a scope of its own (`api.ingest`). What it keeps is error reporting: an
exception that escapes the endpoint is sent to Sentry here, with the route and method, and
answered with a 500 as Starlette's error middleware would.
"""

from __future__ import annotations

import logging

import sentry_sdk
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from api.routes import webhooks
from core.sentry import REPORTED

log = logging.getLogger(__name__)

_SERVER_ERROR = b'{"detail":"Internal Server Error"}'


class BillingApi(FastAPI):
    """FastAPI, with the webhook's POSTs answered before the middleware stack."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] in webhooks.WEBHOOK_PATHS
            and not self.root_path
        ):
            await self._receive_webhook(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def _receive_webhook(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self  # what Starlette sets for `request.app`
        request = Request(scope, receive)
        try:
            response = await webhooks.receive_stripe_webhook(request)
        except Exception as exc:
            _report(scope, exc)
            response = Response(_SERVER_ERROR, 500, media_type="application/json")
        await response(scope, receive, send)


def _report(scope: Scope, exc: Exception) -> None:
    """What Sentry's middleware would have sent: the exception, named by its route."""
    with sentry_sdk.isolation_scope() as sentry_scope:
        sentry_scope.set_transaction_name(scope["path"])
        sentry_scope.set_context("request", {"method": scope["method"], "url": scope["path"]})
        sentry_sdk.capture_exception(exc)
    # Reported above: the logging integration must not send it a second time.
    log.error("webhook delivery to %s failed", scope["path"], exc_info=exc, extra=REPORTED)
