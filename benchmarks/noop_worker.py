"""The Celery ceiling for the renewal-day benchmark: the platform's Celery app (same broker,
acknowledgement, prefetch, signals, Sentry and logging) with one task that does nothing but
count itself in Redis, so a benchmark can time a no-op round trip through a real worker.

    celery -A noop_worker worker -Q bench_noop -c 2   (from benchmarks/, as renewal_day.py does)
"""

from __future__ import annotations

import os

import redis

from tasks.celery_app import app

NOOP_TASK = "bench.noop"
COUNTER_KEY = os.environ.get("BENCH_NOOP_COUNTER", "bench-noop-counter")
_client: redis.Redis | None = None


@app.task(name=NOOP_TASK, ignore_result=True)
def noop() -> None:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(app.conf.broker_url)
    _client.incr(COUNTER_KEY)
