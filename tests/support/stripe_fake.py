"""A small Stripe fake over HTTP for the calls localstripe lacks: disputes (modify, close),
charges, invoice payments, subscriptions (retrieve, update with a new price and proration,
cancel), customers, Checkout Sessions, billing portal sessions and the account. It holds the
objects a test puts in, answers in Stripe's shapes and error format, replays the answer of a
repeated `Idempotency-Key` as Stripe does, and records every request with its headers.

`fail_next` holds canned answers (status, body) served, one per request, before any route:
how the tests make Stripe decline a card, rate limit or fail."""

from __future__ import annotations

import json
import threading
import uuid
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
        self.customers: dict[str, dict[str, Any]] = {}
        self.checkout_sessions: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.headers: list[dict[str, str]] = []  # of each request, names in lower case
        self.fail_next: list[tuple[int, dict[str, Any]]] = []
        self.fail_path: dict[str, list[tuple[int, dict[str, Any]]]] = {}  # the same, per path
        self._answers_by_key: dict[str, tuple[dict[str, str], int, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def client(self) -> stripe.StripeClient:
        return stripe.StripeClient(
            TEST_KEY, base_addresses={"api": self.url}, max_network_retries=0
        )

    def idempotency_keys(self, path: str) -> list[str | None]:
        """The `Idempotency-Key` of each request to that path, in order."""
        return [
            headers.get("idempotency-key")
            for (_, request_path, _), headers in zip(self.requests, self.headers, strict=True)
            if request_path == path
        ]

    def forms(self, method: str, path: str) -> list[dict[str, str]]:
        return [form for m, p, form in self.requests if (m, p) == (method, path)]

    def add_customer(self, customer_id: str, *, user_id: str, deleted: bool = False) -> None:
        self.customers[customer_id] = (
            {"id": customer_id, "object": "customer", "deleted": True}
            if deleted
            else {
                "id": customer_id,
                "object": "customer",
                "email": None,
                "metadata": {"user_id": user_id},
            }
        )

    def _serve(
        self, method: str, path: str, form: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append((method, path, form))
            self.headers.append(headers)
            if self.fail_next:
                return self.fail_next.pop(0)
            if self.fail_path.get(path):
                return self.fail_path[path].pop(0)
            key = headers.get("idempotency-key") if method == "POST" else None
            if key and key in self._answers_by_key:
                earlier_form, status, answer = self._answers_by_key[key]
                if earlier_form != form:
                    return 400, _error(
                        "Keys for idempotent requests can only be used with the same "
                        "parameters they were first used with.",
                        kind="idempotency_error",
                    )
                return status, answer
            status, answer = self._route(method, path, form)
            if key:
                self._answers_by_key[key] = (form, status, answer)
            return status, answer

    def _route(self, method: str, path: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        parts = path.strip("/").split("/")[1:]  # drop the `v1`
        match method, parts:
            case "GET", ["account"]:
                return 200, {"id": "acct_fake", "object": "account", "charges_enabled": True}
            case "POST", ["customers"]:
                customer_id = f"cus_fake{uuid.uuid4().hex[:14]}"
                self.customers[customer_id] = {
                    "id": customer_id,
                    "object": "customer",
                    "email": form.get("email"),
                    "metadata": _nested(form, "metadata"),
                }
                return 200, self.customers[customer_id]
            case "GET", ["customers", customer_id] if customer_id in self.customers:
                return 200, self.customers[customer_id]
            case "POST", ["checkout", "sessions"]:
                return 200, self._checkout_session(form)
            case "POST", ["billing_portal", "sessions"] if form.get("customer") in self.customers:
                portal_id = f"bps_fake{uuid.uuid4().hex[:14]}"
                url = f"https://billing.stripe.com/p/session/{portal_id}"
                return 200, {
                    "id": portal_id,
                    "object": "billing_portal.session",
                    "url": url,
                    "customer": form["customer"],
                    "return_url": form.get("return_url"),
                }
            case "POST", ["subscriptions", subscription_id] if (
                subscription_id in self.subscriptions
            ):
                return self._update_subscription(self.subscriptions[subscription_id], form)
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
                headers = {name.lower(): value for name, value in self.headers.items()}
                status, answer = fake._serve(self.command, url.path, form, headers)
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
        thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()

    def _checkout_session(self, form: dict[str, str]) -> dict[str, Any]:
        session_id = f"cs_test_fake{uuid.uuid4().hex[:14]}"
        session = {
            "id": session_id,
            "object": "checkout.session",
            "url": f"https://checkout.stripe.com/c/pay/{session_id}",
            "mode": form.get("mode"),
            "customer": form.get("customer"),
            "client_reference_id": form.get("client_reference_id"),
            "metadata": _nested(form, "metadata"),
            "success_url": form.get("success_url"),
            "cancel_url": form.get("cancel_url"),
            "status": "open",
            "payment_status": "unpaid",
        }
        self.checkout_sessions[session_id] = session
        return session

    @staticmethod
    def _update_subscription(
        subscription: dict[str, Any], form: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        if subscription["status"] == "canceled":
            return 400, _error("A canceled subscription can only update its metadata.")
        if "cancel_at_period_end" in form:
            subscription["cancel_at_period_end"] = form["cancel_at_period_end"] == "true"
        new_price = form.get("items[0][price]")
        if new_price:
            items = subscription["items"]["data"]
            if form.get("items[0][id]") != items[0]["id"]:
                return 400, _error("No such subscription item.", code="resource_missing")
            items[0]["price"] = {**items[0].get("price", {}), "id": new_price}
            if "plan" in items[0]:
                items[0]["plan"] = {**items[0]["plan"], "id": new_price}
        return 200, subscription


def _nested(form: dict[str, str], name: str) -> dict[str, str]:
    """`name[key]=value` fields of a form-encoded body, as Stripe reads them."""
    prefix = f"{name}["
    return {
        k[len(prefix) : -1]: v
        for k, v in form.items()
        if k.startswith(prefix) and k.endswith("]") and "][" not in k
    }


def _error(
    message: str, code: str | None = None, kind: str = "invalid_request_error"
) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message, "code": code}}
