"""A small Stripe fake over HTTP for what localstripe cannot do: answer 429 or 500 on demand,
and list undelivered events. It serves subscriptions (list with `starting_after`, retrieve),
customers and events in Stripe's shapes, and records every request."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import stripe

TEST_KEY = "sk_test_list_fake"


class StripeListFake:
    def __init__(self) -> None:
        self.subscriptions: list[dict[str, Any]] = []  # in listing order
        # What a retrieve answers for a subscription that changed after it was listed.
        self.changed_since_listing: dict[str, dict[str, Any]] = {}
        self.customers: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] | None = None  # None: `/v1/events` is unknown
        self.rate_limited = 0  # how many requests from now get 429 first
        self.retry_after: str | None = None
        self.failing_from_page: int | None = None  # list pages from this one (1-based) 500
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def client(self, http_client: stripe.HTTPClient | None = None) -> stripe.StripeClient:
        return stripe.StripeClient(
            TEST_KEY,
            base_addresses={"api": self.url},
            max_network_retries=0,
            http_client=http_client,
        )

    @contextmanager
    def running(self) -> Iterator[StripeListFake]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()

    def list_calls(self) -> int:
        return sum(1 for _, path, _ in self.requests if path == "/v1/subscriptions")

    def _answer(
        self, method: str, path: str, query: dict[str, str]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            self.requests.append((method, path, query))
            if self.rate_limited > 0:
                self.rate_limited -= 1
                headers = {"Retry-After": self.retry_after} if self.retry_after else {}
                return 429, _error("Too many requests", "rate_limit"), headers
        parts = path.strip("/").split("/")[1:]
        match parts:
            case ["subscriptions"]:
                return self._list_page(query)
            case ["subscriptions", subscription_id] if (
                subscription_id in self.changed_since_listing
            ):
                return 200, self.changed_since_listing[subscription_id], {}
            case ["subscriptions", subscription_id]:
                found = [s for s in self.subscriptions if s["id"] == subscription_id]
                if found:
                    return 200, found[0], {}
            case ["customers", customer_id] if customer_id in self.customers:
                return 200, self.customers[customer_id], {}
            case ["events"] if self.events is not None:
                since = int(query.get("created[gte]", "0"))
                data = [e for e in self.events if e["created"] >= since]
                return (
                    200,
                    {"object": "list", "url": "/v1/events", "data": data, "has_more": False},
                    {},
                )
        return 404, _error(f"No such object: {path}", "resource_missing"), {}

    def _list_page(self, query: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        limit = int(query.get("limit", "10"))
        start = 0
        if "starting_after" in query:
            ids = [s["id"] for s in self.subscriptions]
            start = ids.index(query["starting_after"]) + 1
        page_number = start // limit + 1
        if self.failing_from_page is not None and page_number >= self.failing_from_page:
            return 500, _error("Something went wrong on Stripe's end.", "api_error"), {}
        data = self.subscriptions[start : start + limit]
        has_more = start + limit < len(self.subscriptions)
        return (
            200,
            {"object": "list", "url": "/v1/subscriptions", "data": data, "has_more": has_more},
            {},
        )

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                status, body, headers = fake._answer("GET", url.path, dict(parse_qsl(url.query)))
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def _error(message: str, kind: str) -> dict[str, Any]:
    error_type = "invalid_request_error" if kind == "resource_missing" else kind
    if kind == "rate_limit":
        error_type = "invalid_request_error"
    return {"error": {"type": error_type, "message": message, "code": kind}}
