"""A minimal Stripe fake for the reconciliation benchmark: N subscriptions served over HTTP.

localstripe rewrites its whole store on every write and cannot hold 100,000 subscriptions,
so this fake makes them up from their index instead of storing them: the same function
gives Stripe's view (served here) and the local view (which the benchmark seeds), and the
two differ exactly where the benchmark wants drift. It answers, with no added latency:

* `GET /v1/subscriptions?status=all&limit=100[&starting_after=...]`: pages in index order;
* `GET /v1/subscriptions/{id}` and `GET /v1/customers/{id}` (404 for unknown ids);
* `GET /v1/events`: an empty list (nothing undelivered);
* `GET /_stats`: how many requests of each kind it answered.

Subscriptions and customers are made by `billing trigger`'s factory (`cli.sample_events`), so
they are shaped like Stripe's (API 2025-09-30.clover: the period on the item), about 2.5 KB
each in JSON, and the client parses what it would parse from Stripe. The HTTP side is the
tests' fake's (`tests.support.stripe_fake.StripeServer`), speaking keep-alive as Stripe does.

Run: python benchmarks/subscription_list_fake.py --port P --count N [--new K --drift D --gone G]
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for `tests.support`
from cli.sample_events import Story, SubscriptionIds, customer, one_month_later, subscription
from tests.support.stripe_fake import Answer, StripeServer, error

PRO, STARTER = "price_pro_test", "price_starter_test"
DRIFT_KINDS = ("cancel_at_period_end", "canceled", "plan")
PERIOD_START = 1_763_000_000
PERIOD_END = one_month_later(PERIOD_START)
INDEX_MARK = b"@@@@@@@@"  # 8 characters, like an index written %08d


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


def _story(number: str) -> Story:
    return Story.fixed(f"cus_bench{number}", now=PERIOD_START, starter_price=STARTER, pro_price=PRO)


def stripe_view(kind: str | None, number: str) -> dict[str, Any]:
    """Stripe's view of the subscription numbered `number` (an index written %08d), which
    drifted from the local copy as `kind` says."""
    ids = SubscriptionIds(
        subscription=f"sub_bench{number}",
        item=f"si_bench{number}",
        product="prod_bench_pro",
        latest_invoice=f"in_bench{number}",
    )
    story = _story(number)
    return subscription(
        story,
        ids,
        story.pro,
        status="canceled" if kind == "canceled" else "active",
        cancel_at_period_end=kind == "cancel_at_period_end",
    )


def customer_view(index: int) -> dict[str, Any]:
    return customer(_story(f"{index:08d}"))


def _index(object_id: str, prefix: str) -> int | None:
    suffix = object_id.removeprefix(prefix)
    return int(suffix) if suffix != object_id and suffix.isdigit() else None


class Fake:
    def __init__(self, data: Dataset) -> None:
        self.data = data
        self.stats: Counter[str] = Counter()
        self._lock = threading.Lock()
        # Each kind of subscription serialised once, with its index left as a mark: a page
        # is then 100 byte replacements, so the fake keeps up with the client.
        self._templates = {
            kind: orjson.dumps(stripe_view(kind, INDEX_MARK.decode()))
            for kind in (None, *DRIFT_KINDS)
        }

    def _serialised(self, index: int) -> bytes:
        template = self._templates[self.data.drift_kind(index)]
        return template.replace(INDEX_MARK, b"%08d" % index)

    def answer(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str]
    ) -> Answer:
        parts = path.strip("/").split("/")
        if parts == ["_stats"]:
            return 200, dict(self.stats), {}
        kind, (status, body) = self._route(parts[1:], query)
        with self._lock:
            self.stats[kind] += 1
        return status, body, {"Request-Id": "req_bench"}

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
                return "list_events", (
                    200,
                    b'{"object":"list","url":"/v1/events","has_more":false,"data":[]}',
                )
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


def _missing(what: str) -> tuple[int, Any]:
    return 404, error(f"No such object: '{what}'", code="resource_missing")


def serve(port: int, data: Dataset) -> None:
    server = StripeServer(Fake(data).answer, port=port, keep_alive=True)
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
