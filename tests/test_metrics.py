"""`GET /metrics` moves when events are processed.

An API and a worker of this module's own share a Prometheus multiprocess directory (as under
`billing up`) and a broker key prefix (so the run's shared worker never takes their tasks).
The database is the run's, so every reading is compared with one taken before, and the
fleet series with rows the test writes and then settles or removes. Each test that has the
worker process something uses an event type of its own: an earlier test's task may still be
ending when the next test takes its first reading.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import delete, update

from api.routes import metrics
from core.settings import load_settings
from db.models import ReconciliationRun, WebhookEvent
from db.session import transaction
from tasks.celery_app import publisher_app
from tests.conftest import WEBHOOK_SECRET, make_client
from tests.support.events import encode, make_event, signed, store_directly, wait_for_status
from tests.support.processes import ApiProcess, WorkerProcess, free_port

WEBHOOK = "/api/stripe/webhook"
RECEIVED = "billing_webhook_events_received_total"
PROCESSED = "billing_events_processed_total"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(after: Samples, before: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def families(text: str) -> set[str]:
    return {family.name for family in text_string_to_metric_families(text)}


def scrape(url: str) -> Samples:
    response = httpx.get(f"{url}/metrics", timeout=5)
    assert response.status_code == 200, response.text
    return parse(response.text)


def wait_for_move(url: str, before: Samples, name: str, **labels: str) -> Samples:
    """Scrape until the series moved: a pool process counts just after its task ended."""
    deadline = time.monotonic() + 10
    while True:
        try:
            samples = scrape(url)
            if moved(samples, before, name, **labels) > 0:
                return samples
        except httpx.HTTPError:  # a worker's port may not be open yet
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} {labels} never moved")
        time.sleep(0.05)


@dataclass
class Platform:
    api: ApiProcess
    worker: WorkerProcess

    def scrape(self) -> Samples:
        return scrape(self.api.url)

    def post(self, event: dict, secret: str = WEBHOOK_SECRET) -> httpx.Response:
        body = encode(event)
        return httpx.post(f"{self.api.url}{WEBHOOK}", content=body, headers=signed(body, secret))

    def wait_for_move(self, before: Samples, name: str, **labels: str) -> Samples:
        return wait_for_move(self.api.url, before, name, **labels)

    def fresh_scrape(self) -> Samples:
        """A scrape whose fleet series were read after this call: each API process answers
        from one read for FLEET_STATE_MAX_AGE."""
        time.sleep(metrics.FLEET_STATE_MAX_AGE + 0.05)
        return self.scrape()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    env = {
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path_factory.mktemp("prometheus")),
        # Under the run's prefix, so that the run's clean-up deletes these keys too.
        "BROKER_KEY_PREFIX": f"{os.environ['BROKER_KEY_PREFIX']}metrics:",
    }
    api, worker = ApiProcess(env=env), WorkerProcess(env=env)
    api_starting = threading.Thread(target=api.start)  # side by side: a second saved
    api_starting.start()
    try:
        worker.start()
        api_starting.join()
        yield Platform(api, worker)
    finally:
        api_starting.join()
        worker.stop()
        api.stop()


# --- Per-process series: the API's and the worker's, through one directory ------------------


def test_each_delivery_is_counted_by_type_and_outcome(platform):
    before = platform.scrape()
    event = make_event("customer.created")

    assert platform.post(event).json()["duplicate"] is False
    assert platform.post(event).json()["duplicate"] is True
    assert platform.post(make_event("customer.created"), secret="whsec_wrong").status_code == 401
    assert platform.post(make_event("product.created")).status_code == 200  # unhandled

    after = platform.scrape()
    assert moved(after, before, RECEIVED, type="customer.created", outcome="stored") == 1
    assert moved(after, before, RECEIVED, type="customer.created", outcome="duplicate") == 1
    assert moved(after, before, RECEIVED, type="unknown", outcome="rejected") == 1
    assert moved(after, before, RECEIVED, type="other", outcome="ignored") == 1
    assert all(dict(labels).get("type") != "product.created" for _, labels in after)


def test_a_processed_event_moves_the_processing_series(platform):
    kind = "invoice.payment_succeeded"
    before = platform.scrape()
    event = make_event(kind)

    platform.post(event)

    assert wait_for_status(event["id"]).status == "processed"
    after = platform.wait_for_move(before, PROCESSED, type=kind, outcome="processed")
    assert moved(after, before, PROCESSED, type=kind, outcome="processed") == 1
    assert moved(after, before, "billing_event_processing_seconds_count", type=kind) == 1
    assert moved(after, before, "billing_event_end_to_end_seconds_count", type=kind) == 1
    assert moved(after, before, "billing_event_end_to_end_seconds_sum", type=kind) > 0


def test_a_failed_event_moves_the_failed_counter_and_the_failed_rows_gauge(platform):
    before = platform.fresh_scrape()
    event = make_event("invoice.paid")
    event["data"]["object"] = {"object": "invoice"}  # names no customer: a permanent error

    platform.post(event)

    assert wait_for_status(event["id"]).status == "failed"
    after = platform.wait_for_move(before, PROCESSED, type="invoice.paid", outcome="failed")
    assert moved(after, before, PROCESSED, type="invoice.paid", outcome="failed") == 1
    assert moved(after, before, PROCESSED, type="invoice.paid", outcome="processed") == 0
    after = platform.fresh_scrape()
    assert moved(after, before, "billing_failed_events", type="invoice.paid") == 1


def test_a_sent_email_moves_the_email_counter(platform, smtp_server):
    sent = {"template": "dispute_opened", "outcome": "sent"}
    before = platform.scrape()
    event = make_event("charge.dispute.created")  # tells ADMIN_EMAILS at once

    platform.post(event)

    after = platform.wait_for_move(before, "billing_emails_total", **sent)
    assert moved(after, before, "billing_emails_total", **sent) == 1


# --- Fleet series, read from PostgreSQL at each scrape --------------------------------------


def test_the_oldest_unprocessed_age_covers_a_stored_row_until_it_is_done(platform):
    age = "billing_oldest_unprocessed_event_age_seconds"
    ten_years = timedelta(days=3650)  # older than any row another test leaves pending
    row_id = store_directly(make_event("invoice.paid"), received_at=datetime.now(UTC) - ten_years)
    try:
        waiting = platform.fresh_scrape()
        _settle(row_id)
        done = platform.fresh_scrape()
    finally:
        _settle(row_id)  # never left for a sweep to find

    assert value(waiting, "billing_metrics_database_up") == 1
    assert value(waiting, age) >= ten_years.total_seconds()
    assert 0 <= value(done, age) < ten_years.total_seconds() - 86400


def _settle(row_id: int) -> None:
    with transaction() as session:
        session.execute(
            update(WebhookEvent).where(WebhookEvent.id == row_id).values(status="processed")
        )


def test_the_reconciliation_gauges_show_the_last_finished_run(platform):
    last = "billing_reconciliation_last"
    finished = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    runs: list[int] = []
    try:
        runs.append(_finished_run("succeeded", finished, checked=7, drifted=3, fixed=2))
        succeeded = platform.fresh_scrape()
        runs.append(_finished_run("failed", finished + timedelta(hours=1), checked=1))
        failed = platform.fresh_scrape()
    finally:
        with transaction() as session:
            session.execute(delete(ReconciliationRun).where(ReconciliationRun.id.in_(runs)))

    assert value(succeeded, f"{last}_succeeded") == 1
    assert value(succeeded, f"{last}_checked") == 7
    assert value(succeeded, f"{last}_drifted") == 3
    assert value(succeeded, f"{last}_fixed") == 2
    assert value(succeeded, f"{last}_finished_timestamp_seconds") == finished.timestamp()
    assert value(failed, f"{last}_succeeded") == 0
    assert value(failed, f"{last}_checked") == 1


def _finished_run(status: str, finished_at: datetime, **counts: int) -> int:
    with transaction() as session:
        run = ReconciliationRun(
            status=status, trigger="cli", phase="done", finished_at=finished_at, **counts
        )
        session.add(run)
        session.flush()
        return run.id


# --- The endpoint in process ----------------------------------------------------------------


def test_metrics_is_the_text_format_and_stays_out_of_the_api_schema(client):
    started = time.perf_counter()
    response = client.get("/metrics")
    elapsed = time.perf_counter() - started

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert {"billing_webhook_events_received", "billing_metrics_database_up"} <= families(
        response.text
    )
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]
    assert elapsed < 1  # a few milliseconds in fact


def test_an_unreachable_database_gives_a_200_without_the_fleet_series():
    closed_port = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/billing"
    with make_client(database_url=closed_port) as client:
        response = client.get("/metrics")

    assert response.status_code == 200
    assert value(parse(response.text), "billing_metrics_database_up") == 0
    names = families(response.text)
    assert "billing_oldest_unprocessed_event_age_seconds" not in names
    assert "billing_webhook_events_received" in names  # the process's own series stay


# --- A worker on its own: WORKER_METRICS_PORT without a shared directory --------------------


def test_a_worker_serves_its_pool_processes_metrics_on_its_port():
    port = free_port()
    prefix = f"{os.environ['BROKER_KEY_PREFIX']}own-port-{uuid.uuid4().hex[:6]}:"
    worker = WorkerProcess(env={"WORKER_METRICS_PORT": str(port), "BROKER_KEY_PREFIX": prefix})
    worker.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    worker.start()
    try:
        event = make_event("invoice.paid")
        row_id = store_directly(event)
        publisher_app(load_settings(broker_key_prefix=prefix)).send_task(
            "stripe.invoice.paid", args=[row_id]
        )
        assert wait_for_status(event["id"]).status == "processed"

        url = f"http://127.0.0.1:{port}"
        after = wait_for_move(url, {}, PROCESSED, type="invoice.paid", outcome="processed")
        assert value(after, PROCESSED, type="invoice.paid", outcome="processed") == 1
        assert value(after, "billing_event_processing_seconds_count", type="invoice.paid") == 1
        private_dir = Path(_private_dir(worker.log()))
        assert private_dir.is_dir()
    finally:
        worker.stop()
    assert not private_dir.exists()  # removed as the worker exits


def _private_dir(log: str) -> str:
    match = re.search(r'worker metrics on port \d+, directory ([^\s"]+)', log)
    assert match, log[-3000:]
    return match.group(1)


def test_a_burst_of_scrapes_makes_one_database_read(settings, monkeypatch):
    reads = 0
    real_read = metrics.read_fleet_state

    async def counted(read_settings):
        nonlocal reads
        reads += 1
        return await real_read(read_settings)

    monkeypatch.setattr(metrics, "read_fleet_state", counted)
    cache = metrics.FleetStateCache(settings, max_age_seconds=60)

    async def burst() -> list:
        return await asyncio.gather(*(cache.get() for _ in range(30)))

    states = asyncio.run(burst())
    assert reads == 1
    assert all(state is states[0] for state in states) and states[0] is not None


def test_a_broken_multiprocess_directory_costs_its_own_series_only(tmp_path, monkeypatch):
    (tmp_path / "counter_999999.db").write_bytes(b"not a metrics file")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    with make_client() as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    samples = parse(response.text)
    assert value(samples, "billing_metrics_multiprocess_up") == 0
    assert value(samples, "billing_metrics_database_up") == 1


def test_an_api_of_two_processes_counts_every_delivery_in_every_scrape():
    # No PROMETHEUS_MULTIPROC_DIR given: `billing api --workers 2` makes one for its processes.
    env = {"PROMETHEUS_MULTIPROC_DIR": ""}
    api = ApiProcess(env=env, workers=2)
    api.start()
    try:
        before = scrape(api.url)
        for _ in range(8):  # a connection each, so the kernel spreads them over the processes
            body = encode(make_event("customer.created"))
            response = httpx.post(
                f"{api.url}{WEBHOOK}", content=body, headers=signed(body, WEBHOOK_SECRET)
            )
            assert response.status_code == 200
        # Whichever process answers a scrape, it reports the deliveries of both.
        readings = [
            moved(scrape(api.url), before, RECEIVED, type="customer.created", outcome="stored")
            for _ in range(6)
        ]
        assert readings == [8] * 6
        assert api.log().count("Started server process") == 2
    finally:
        api.stop()
