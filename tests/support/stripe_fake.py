"""A small Stripe fake over HTTP for the calls localstripe lacks: disputes (modify, close),
charges, payment intents, invoice payments, subscriptions (list with `starting_after`,
retrieve, update with a new price and proration, cancel), customers, Checkout Sessions,
billing portal sessions, the account and undelivered events. It holds the objects a test puts
in, answers in Stripe's shapes and error format, replays the answer of a repeated
`Idempotency-Key` as Stripe does, and records every request with its headers.

`fail_next` holds canned answers (status, body[, headers]) served, one per request, before any
route: how the tests make Stripe decline a card, rate limit (`rate_limited()`) or fail.

`StripeServer` is the HTTP side alone, for a fake with routes of its own (the reconciliation
benchmark's, which makes its 100,000 subscriptions up from their index)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import stripe

TEST_KEY = "sk_test_fake"

# What a route answers: the status, the body (a JSON object, or one already serialised) and
# any headers; `fail_next` may leave the headers out.
Answer = tuple[int, Any, dict[str, str]]
Canned = tuple[int, dict[str, Any]] | tuple[int, dict[str, Any], dict[str, str]]
Responder = Callable[[str, str, dict[str, str], dict[str, str]], Answer]


class StripeServer:
    """A Stripe-like HTTP server on 127.0.0.1: each request's method, path, form (query and
    body) and headers (names in lower case) go to `respond`, and its answer goes back as JSON.
    `keep_alive` speaks HTTP/1.1 as Stripe does, for a client that makes many requests."""

    def __init__(self, respond: Responder, *, port: int = 0, keep_alive: bool = False) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(respond, keep_alive))
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}"

    def serve_forever(self) -> None:
        self._server.serve_forever()

    @contextmanager
    def running(self) -> Iterator[StripeServer]:
        # A short poll: shutdown() waits for one, and every test using a fake ends with it.
        thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()


def _handler(respond: Responder, keep_alive: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        if keep_alive:
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body in two writes: no 40 ms stall

        def _serve(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            form = dict(parse_qsl(url.query)) | dict(parse_qsl(body))
            headers = {name.lower(): value for name, value in self.headers.items()}
            status, answer, extra = respond(self.command, url.path, form, headers)
            payload = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def rate_limited(retry_after: str | None = None) -> Canned:
    """A 429, as Stripe answers too many requests; a canned answer for `fail_next`."""
    headers = {"Retry-After": retry_after} if retry_after else {}
    return 429, error("Too many requests", code="rate_limit"), headers


class StripeFake:
    def __init__(self) -> None:
        self.disputes: dict[str, dict[str, Any]] = {}
        self.charges: dict[str, dict[str, Any]] = {}
        self.payment_intents: dict[str, dict[str, Any]] = {}
        self.invoice_payments: list[dict[str, Any]] = []
        self.subscriptions: dict[str, dict[str, Any]] = {}  # in listing order
        # What a retrieve answers for a subscription that changed after it was listed.
        self.changed_since_listing: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] | None = None  # None: `/v1/events` is unknown
        self.failing_from_page: int | None = None  # list pages from this one (1-based) 500
        self.customers: dict[str, dict[str, Any]] = {}
        self.checkout_sessions: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.refunds: list[dict[str, Any]] = []  # created by `POST /v1/refunds`, in order
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.headers: list[dict[str, str]] = []  # of each request, names in lower case
        self.fail_next: list[Canned] = []
        self.fail_path: dict[str, list[Canned]] = {}  # the same, per path
        self._answers_by_key: dict[str, tuple[dict[str, str], Answer]] = {}
        self._lock = threading.Lock()
        self._server = StripeServer(self._serve)
        self.url = self._server.url

    def client(self, http_client: stripe.HTTPClient | None = None) -> stripe.StripeClient:
        return stripe.StripeClient(
            TEST_KEY,
            base_addresses={"api": self.url},
            max_network_retries=0,
            http_client=http_client,
        )

    @contextmanager
    def running(self) -> Iterator[StripeFake]:
        with self._server.running():
            yield self

    def add_subscriptions(self, subscriptions: list[dict[str, Any]]) -> None:
        """Subscriptions to list (in this order after those already here) and retrieve."""
        self.subscriptions |= {s["id"]: s for s in subscriptions}

    def list_calls(self) -> int:
        return sum(1 for _, path, _ in self.requests if path == "/v1/subscriptions")

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
    ) -> Answer:
        with self._lock:
            self.requests.append((method, path, form))
            self.headers.append(headers)
            if self.fail_next:
                return _answer(self.fail_next.pop(0))
            if self.fail_path.get(path):
                return _answer(self.fail_path[path].pop(0))
            key = headers.get("idempotency-key") if method == "POST" else None
            if key and key in self._answers_by_key:
                earlier_form, answer = self._answers_by_key[key]
                if earlier_form != form:
                    message = (
                        "Keys for idempotent requests can only be used with the same "
                        "parameters they were first used with."
                    )
                    return 400, error(message, kind="idempotency_error"), {}
                return answer
            answer = _answer(self._route(method, path, form))
            if key:
                self._answers_by_key[key] = (form, answer)
            return answer

    def _route(self, method: str, path: str, form: dict[str, str]) -> Canned:
        parts = path.strip("/").split("/")[1:]  # drop the `v1`
        match method, parts:
            case "GET", ["subscriptions"]:
                return self._list_page(form)
            case "GET", ["subscriptions", subscription_id] if (
                subscription_id in self.changed_since_listing
            ):
                return 200, self.changed_since_listing[subscription_id]
            case "GET", ["events"] if self.events is not None:
                since = int(form.get("created[gte]", "0"))
                data = [e for e in self.events if e["created"] >= since]
                return 200, _list("/v1/events", data, has_more=False)
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
            case "GET", ["invoices", invoice_id] if invoice_id in self.invoices:
                return 200, self.invoices[invoice_id]
            case "GET", ["charges", charge_id] if charge_id in self.charges:
                return 200, self.charges[charge_id]
            case "GET", ["payment_intents", intent] if intent in self.payment_intents:
                return 200, self.payment_intents[intent]
            case "GET", ["subscriptions", subscription_id] if subscription_id in self.subscriptions:
                return 200, self.subscriptions[subscription_id]
            case "GET", ["invoice_payments"]:
                intent = form.get("payment[payment_intent]")
                data = [
                    p for p in self.invoice_payments if p["payment"]["payment_intent"] == intent
                ]
                return 200, _list("/v1/invoice_payments", data, has_more=False)
            case "POST", ["refunds"]:
                return self._refund(form)
            case "POST", ["disputes", dispute_id] if dispute_id in self.disputes:
                return 200, self._modify(self.disputes[dispute_id], form)
            case "POST", ["disputes", dispute_id, "close"] if dispute_id in self.disputes:
                dispute = self.disputes[dispute_id]
                if dispute["status"] in ("won", "lost"):
                    return 400, error("This dispute is already closed.")
                dispute["status"] = "lost"
                return 200, dispute
            case "DELETE", ["subscriptions", subscription_id] if (
                subscription_id in self.subscriptions
            ):
                subscription = self.subscriptions[subscription_id]
                if subscription["status"] == "canceled":
                    return 400, error("This subscription is already canceled.")
                subscription["status"] = "canceled"
                return 200, subscription
        return 404, error(f"No such object: {path}", code="resource_missing")

    def _refund(self, form: dict[str, str]) -> Canned:
        """A refund of the whole charge (or `amount`), as Stripe answers; the charge, when
        the fake holds it, records it."""
        charge = self.charges.get(form.get("charge", ""))
        if form.get("charge") and charge is None and not form.get("amount"):
            return 404, error(f"No such charge: '{form['charge']}'", code="resource_missing")
        amount = int(form.get("amount") or (charge or {}).get("amount") or 0)
        refund = {
            "id": f"re_fake{uuid.uuid4().hex[:14]}",
            "object": "refund",
            "amount": amount,
            "charge": form.get("charge"),
            "payment_intent": form.get("payment_intent") or (charge or {}).get("payment_intent"),
            "reason": form.get("reason"),
            "metadata": _nested(form, "metadata"),
            "status": "succeeded",
        }
        if charge is not None:
            charge["amount_refunded"] = int(charge.get("amount_refunded") or 0) + amount
            charge["refunded"] = charge["amount_refunded"] >= int(charge.get("amount") or 0)
        self.refunds.append(refund)
        return 200, refund

    @staticmethod
    def _modify(dispute: dict[str, Any], form: dict[str, str]) -> dict[str, Any]:
        if dispute["status"] in ("won", "lost", "warning_closed"):
            return dispute
        for key, value in form.items():
            if key.startswith("evidence[") and key.endswith("]"):
                # Nested fields (`evidence[enhanced_evidence][...][0][charge]`) nest here too.
                path = key[len("evidence[") : -1].split("][")
                target = dispute.setdefault("evidence", {})
                for part in path[:-1]:
                    target = target.setdefault(part, {})
                target[path[-1]] = value
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

    def _list_page(self, query: dict[str, str]) -> Canned:
        limit = int(query.get("limit", "10"))
        ids = list(self.subscriptions)
        start = ids.index(query["starting_after"]) + 1 if "starting_after" in query else 0
        if self.failing_from_page is not None and start // limit + 1 >= self.failing_from_page:
            return 500, error("Something went wrong on Stripe's end.", kind="api_error")
        data = [self.subscriptions[i] for i in ids[start : start + limit]]
        return 200, _list("/v1/subscriptions", data, has_more=start + limit < len(ids))

    @staticmethod
    def _update_subscription(subscription: dict[str, Any], form: dict[str, str]) -> Canned:
        if subscription["status"] == "canceled":
            return 400, error("A canceled subscription can only update its metadata.")
        if "cancel_at_period_end" in form:
            subscription["cancel_at_period_end"] = form["cancel_at_period_end"] == "true"
        new_price = form.get("items[0][price]")
        if new_price:
            items = subscription["items"]["data"]
            if form.get("items[0][id]") != items[0]["id"]:
                return 400, error("No such subscription item.", code="resource_missing")
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


def error(
    message: str, code: str | None = None, kind: str = "invalid_request_error"
) -> dict[str, Any]:
    """The body of a Stripe error answer."""
    return {"error": {"type": kind, "message": message, "code": code}}


def _list(url: str, data: list[dict[str, Any]], *, has_more: bool) -> dict[str, Any]:
    return {"object": "list", "url": url, "data": data, "has_more": has_more}


def _answer(canned: Canned) -> Answer:
    status, body, *headers = canned
    return status, body, headers[0] if headers else {}
