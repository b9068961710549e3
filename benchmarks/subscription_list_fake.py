"""A minimal Stripe fake for the reconciliation benchmark: N subscriptions served over HTTP.

localstripe rewrites its whole store on every write and cannot hold 100,000 subscriptions,
so this fake makes them up from their index instead of storing them: the same function
gives Stripe's view (served here) and the local view (which the benchmark seeds), and the
two differ exactly where the benchmark wants drift. It answers, with no added latency:

* `GET /v1/subscriptions?status=all&limit=100[&starting_after=...]`: pages in index order;
* `GET /v1/subscriptions/{id}` and `GET /v1/customers/{id}` (404 for unknown ids);
* `GET /v1/events`: an empty list (nothing undelivered);
* `GET /_stats`: how many requests of each kind it answered.

Subscriptions are shaped like Stripe's (API 2025-03-31.basil and later: the period on the
item), about 2.5 KB each in JSON, so the client parses what it would parse from Stripe.

Run: python benchmarks/subscription_list_fake.py --port P --count N [--new K --drift D --gone G]
"""

from __future__ import annotations

import argparse
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

PRO, STARTER = "price_pro_test", "price_starter_test"
DRIFT_KINDS = ("cancel_at_period_end", "canceled", "plan")
CREATED = 1_760_000_000
PERIOD_START = 1_763_000_000
PERIOD_END = PERIOD_START + 30 * 86400


@dataclass(frozen=True)
class Dataset:
    """Which of `count` subscriptions differ from the local copies, and how.

    Index 0..new-1: Stripe has them, the platform never saw them (adopted).
    Index new..new+drift-1: drifted, in turn: cancel_at_period_end set, canceled, or moved
    from starter (local) to pro (Stripe).
    `gone` more exist only locally (Stripe no longer has them)."""

    count: int
    new: int = 0
    drift: int = 0
    gone: int = 0

    def drift_kind(self, index: int) -> str | None:
        if self.new <= index < self.new + self.drift:
            return DRIFT_KINDS[(index - self.new) % len(DRIFT_KINDS)]
        return None

    def is_new(self, index: int) -> bool:
        return index < self.new


def subscription_id(index: int) -> str:
    return f"sub_bench{index:08d}"


def customer_id(index: int) -> str:
    return f"cus_bench{index:08d}"


def gone_subscription_id(index: int) -> str:
    return f"sub_gone{index:08d}"


def gone_customer_id(index: int) -> str:
    return f"cus_gone{index:08d}"


def local_view(data: Dataset, index: int) -> tuple[str, str, bool]:
    """(status, price, cancel_at_period_end) of the local copy."""
    return "active", STARTER if data.drift_kind(index) == "plan" else PRO, False


def stripe_view(
    data: Dataset, index: int, *, kind: str | None = None, mark: bool = False
) -> dict[str, Any]:
    """Stripe's view of one subscription; with `mark`, of `kind` with its index as a mark."""
    kind = kind if mark else data.drift_kind(index)
    number = INDEX_MARK.decode() if mark else f"{index:08d}"
    sub_id = f"sub_bench{number}"
    status = "canceled" if kind == "canceled" else "active"
    return {
        "id": sub_id,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": PERIOD_START,
        "billing_mode": {"type": "classic"},
        "cancel_at": PERIOD_END if kind == "cancel_at_period_end" else None,
        "cancel_at_period_end": kind == "cancel_at_period_end",
        "canceled_at": PERIOD_START + 86400 if kind == "canceled" else None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": "charge_automatically",
        "created": CREATED,
        "currency": "usd",
        "customer": f"cus_bench{number}",
        "days_until_due": None,
        "default_payment_method": f"pm_bench{number}",
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "ended_at": PERIOD_START + 86400 if kind == "canceled" else None,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "items": {
            "object": "list",
            "data": [
                {
                    "id": f"si_bench{number}",
                    "object": "subscription_item",
                    "created": CREATED,
                    "current_period_end": PERIOD_END,
                    "current_period_start": PERIOD_START,
                    "discounts": [],
                    "metadata": {},
                    "price": {
                        "id": PRO,
                        "object": "price",
                        "active": True,
                        "billing_scheme": "per_unit",
                        "created": CREATED,
                        "currency": "usd",
                        "livemode": False,
                        "lookup_key": None,
                        "metadata": {},
                        "nickname": None,
                        "product": "prod_bench_pro",
                        "recurring": {
                            "interval": "month",
                            "interval_count": 1,
                            "meter": None,
                            "usage_type": "licensed",
                        },
                        "tax_behavior": "unspecified",
                        "type": "recurring",
                        "unit_amount": 2900,
                        "unit_amount_decimal": "2900",
                    },
                    "quantity": 1,
                    "subscription": sub_id,
                    "tax_rates": [],
                }
            ],
            "has_more": False,
            "total_count": 1,
            "url": f"/v1/subscription_items?subscription={sub_id}",
        },
        "latest_invoice": f"in_bench{number}",
        "livemode": False,
        "metadata": {},
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": CREATED,
        "status": status,
        "test_clock": None,
        "transfer_data": None,
        "trial_end": None,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": None,
    }


def customer_view(index: int) -> dict[str, Any]:
    return {
        "id": customer_id(index),
        "object": "customer",
        "created": CREATED + index,
        "email": f"user{index}@example.com",
        "metadata": {"user_id": f"user_{index}"},
        "livemode": False,
    }


def _index(object_id: str, prefix: str) -> int | None:
    suffix = object_id.removeprefix(prefix)
    return int(suffix) if suffix != object_id and suffix.isdigit() else None


INDEX_MARK = b"@@@@@@@@"  # 8 characters, like an index written %08d


class Fake:
    def __init__(self, data: Dataset) -> None:
        self.data = data
        self.stats: Counter[str] = Counter()
        self._lock = threading.Lock()
        # Each kind of subscription serialised once, with its index left as a mark: a page
        # is then 100 byte replacements, so the fake keeps up with the client.
        self._templates = {
            kind: orjson.dumps(stripe_view(data, index, kind=kind, mark=True))
            for kind, index in ((None, 0), *[(k, 0) for k in DRIFT_KINDS])
        }

    def _serialised(self, index: int) -> bytes:
        template = self._templates[self.data.drift_kind(index)]
        return template.replace(INDEX_MARK, b"%08d" % index)

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if parts == ["_stats"]:
            return 200, dict(self.stats)
        kind, result = self._route(parts[1:], query)
        with self._lock:
            self.stats[kind] += 1
        return result

    def _route(self, parts: list[str], query: dict[str, str]) -> tuple[str, tuple[int, Any]]:
        match parts:
            case ["subscriptions"]:
                return "list_subscriptions", (200, self._page(query))
            case ["subscriptions", sub_id]:
                index = _index(sub_id, "sub_bench")
                if index is not None and index < self.data.count:
                    return "retrieve_subscription", (200, self._serialised(index))
                return "retrieve_subscription", _missing(sub_id)
            case ["customers", cus_id]:
                index = _index(cus_id, "cus_bench")
                if index is not None and index < self.data.count:
                    return "retrieve_customer", (200, customer_view(index))
                return "retrieve_customer", _missing(cus_id)
            case ["events"]:
                return "list_events", (200, _list("/v1/events", [], has_more=False))
        return "other", _missing("/".join(parts))

    def _page(self, query: dict[str, str]) -> bytes:
        limit = min(int(query.get("limit", "10")), 100)
        start = 0
        if "starting_after" in query:
            start = (_index(query["starting_after"], "sub_bench") or 0) + 1
        end = min(start + limit, self.data.count)
        data = b",".join(self._serialised(index) for index in range(start, end))
        has_more = b"true" if end < self.data.count else b"false"
        return b'{"object":"list","url":"/v1/subscriptions","has_more":%s,"data":[%s]}' % (
            has_more,
            data,
        )


def _list(url: str, data: list[dict[str, Any]], *, has_more: bool) -> dict[str, Any]:
    return {"object": "list", "url": url, "data": data, "has_more": has_more}


def _missing(what: str) -> tuple[int, Any]:
    message = f"No such object: '{what}'"
    return 404, {
        "error": {"type": "invalid_request_error", "code": "resource_missing", "message": message}
    }


def serve(port: int, data: Dataset) -> None:
    fake = Fake(data)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as with Stripe
        disable_nagle_algorithm = True  # headers and body in two writes: no 40 ms stall

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            status, body = fake.answer(url.path, dict(parse_qsl(url.query)))
            payload = body if isinstance(body, bytes) else orjson.dumps(body)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Request-Id", "req_bench")
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"listening on {port}", flush=True)
    server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--new", type=int, default=0)
    parser.add_argument("--drift", type=int, default=0)
    parser.add_argument("--gone", type=int, default=0)
    args = parser.parse_args()
    serve(args.port, Dataset(args.count, args.new, args.drift, args.gone))


if __name__ == "__main__":
    main()
