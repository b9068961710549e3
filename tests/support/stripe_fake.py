"""A small Stripe fake over HTTP for the calls localstripe lacks: disputes (modify, close),
charges, invoice payments, and subscription cancel. It holds the objects a test puts in,
answers in Stripe's shapes and error format, and records every request."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import stripe

TEST_KEY = "sk_test_fake"


class StripeFake:
    def __init__(self) -> None:
        self.disputes: dict[str, dict[str, Any]] = {}
        self.charges: dict[str, dict[str, Any]] = {}
        self.invoice_payments: list[dict[str, Any]] = []
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def client(self) -> stripe.StripeClient:
        return stripe.StripeClient(
            TEST_KEY, base_addresses={"api": self.url}, max_network_retries=0
        )

    def _route(self, method: str, path: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        parts = path.strip("/").split("/")[1:]  # drop the `v1`
        match method, parts:
            case "GET", ["charges", charge_id] if charge_id in self.charges:
                return 200, self.charges[charge_id]
            case "GET", ["subscriptions", subscription_id] if subscription_id in self.subscriptions:
                return 200, self.subscriptions[subscription_id]
            case "GET", ["invoice_payments"]:
                intent = form.get("payment[payment_intent]")
                data = [
                    p for p in self.invoice_payments if p["payment"]["payment_intent"] == intent
                ]
                return 200, {"object": "list", "data": data, "has_more": False}
            case "POST", ["disputes", dispute_id] if dispute_id in self.disputes:
                return 200, self._modify(self.disputes[dispute_id], form)
            case "POST", ["disputes", dispute_id, "close"] if dispute_id in self.disputes:
                dispute = self.disputes[dispute_id]
                if dispute["status"] in ("won", "lost"):
                    return 400, _error("This dispute is already closed.")
                dispute["status"] = "lost"
                return 200, dispute
            case "DELETE", ["subscriptions", subscription_id] if (
                subscription_id in self.subscriptions
            ):
                subscription = self.subscriptions[subscription_id]
                if subscription["status"] == "canceled":
                    return 400, _error("This subscription is already canceled.")
                subscription["status"] = "canceled"
                return 200, subscription
        return 404, _error(f"No such object: {path}", code="resource_missing")

    @staticmethod
    def _modify(dispute: dict[str, Any], form: dict[str, str]) -> dict[str, Any]:
        if dispute["status"] in ("won", "lost", "warning_closed"):
            return dispute
        for key, value in form.items():
            if key.startswith("evidence[") and key.endswith("]"):
                dispute.setdefault("evidence", {})[key[len("evidence[") : -1]] = value
        details = dispute.setdefault("evidence_details", {})
        details["has_evidence"] = True
        if form.get("submit") == "true":
            details["submission_count"] = int(details.get("submission_count") or 0) + 1
            dispute["status"] = (
                "warning_under_review"
                if dispute["status"].startswith("warning")
                else "under_review"
            )
        return dispute

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                form = dict(parse_qsl(url.query)) | dict(parse_qsl(body))
                fake.requests.append((self.command, url.path, form))
                status, answer = fake._route(self.command, url.path, form)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = _serve

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    @contextmanager
    def running(self) -> Iterator[StripeFake]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()


def _error(message: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"type": "invalid_request_error", "message": message, "code": code}}
