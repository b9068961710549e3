"""`billing flower`: a real Flower next to the run's worker, on the run's broker key prefix."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import WEBHOOK_SECRET
from tests.support.events import encode, make_event, signed, wait_for_status
from tests.support.processes import BILLING, ManagedProcess, WorkerProcess, free_port

PASSWORD = "flower-pass-3f9a"
SECOND_PASSWORD = "other-pass-71c2"
CREDENTIALS = ("ops", PASSWORD)


class FlowerProcess(ManagedProcess):
    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__([*BILLING, "flower", "--port", str(self.port)], env)

    def start(self) -> None:
        super().start()
        wait_until(lambda: _answers(f"{self.url}/healthcheck"), "Flower to answer", self)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(check: Callable[[], Any], what: str, process: ManagedProcess, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        if not process.alive:
            raise AssertionError(
                f"Flower exited while waiting for {what}:\n{process.log()[-3000:]}"
            )
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}:\n{process.log()[-3000:]}")


@pytest.fixture(scope="module")
def flower_server(_worker_process: WorkerProcess) -> Iterator[FlowerProcess]:
    """Flower, once its event receiver is known to be listening: the worker (which runs
    without heartbeats in tests) is asked for a heartbeat event until Flower has counted one.
    Flower's own start-up request for one can be answered before its subscription is active."""
    from tasks.celery_app import app as celery_app

    _worker_process.ensure_running()
    server = FlowerProcess({"FLOWER_BASIC_AUTH": f"ops:{PASSWORD},audit:{SECOND_PASSWORD}"})

    def sees_worker_events() -> bool:
        celery_app.control.heartbeat()
        metrics = httpx.get(f"{server.url}/metrics", timeout=2).text
        return 'flower_worker_online{worker="' in metrics

    try:  # a start that fails half-way must not leave Flower running
        server.start()
        wait_until(sees_worker_events, "the worker's heartbeat event", server)
        yield server
    finally:
        server.stop()


# --- access -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/tasks", "/api/tasks", "/api/workers"])
def test_flower_refuses_requests_without_credentials(flower_server, path):
    response = httpx.get(f"{flower_server.url}{path}", timeout=5)

    assert response.status_code == 401


@pytest.mark.parametrize(
    "auth",
    [("ops", "wrong"), ("nobody", PASSWORD), ("audit", PASSWORD), ("ops", "")],
    ids=["wrong-password", "unknown-user", "other-users-password", "empty-password"],
)
def test_flower_refuses_wrong_credentials(flower_server, auth):
    response = httpx.get(f"{flower_server.url}/api/tasks", auth=auth, timeout=5)

    assert response.status_code == 401


@pytest.mark.parametrize("auth", [CREDENTIALS, ("audit", SECOND_PASSWORD)])
def test_flower_lets_every_configured_user_in(flower_server, auth):
    assert httpx.get(f"{flower_server.url}/", auth=auth, timeout=5).status_code == 200
    assert httpx.get(f"{flower_server.url}/api/tasks", auth=auth, timeout=5).status_code == 200


def test_flower_serves_metrics_and_healthcheck_without_credentials(flower_server):
    """Flower's design, kept visible here: a Flower upgrade that changes it should be noticed
    (the README warns about it)."""
    assert httpx.get(f"{flower_server.url}/healthcheck", timeout=5).text == "OK"
    metrics = httpx.get(f"{flower_server.url}/metrics", timeout=5)
    assert metrics.status_code == 200
    assert "flower_events_total" in metrics.text


def test_flower_never_prints_the_passwords(flower_server):
    log = flower_server.log()

    assert "Flower asks for a login; users: ops, audit" in log
    assert PASSWORD not in log
    assert SECOND_PASSWORD not in log


# --- the platform's tasks, through the run's broker key prefix --------------------------------


def test_a_webhook_shows_in_flower_as_its_own_stripe_task(flower_server, worker, client):
    event = make_event("customer.created")
    body = encode(event)
    assert client.post(
        "/api/stripe/webhook", content=body, headers=signed(body, WEBHOOK_SECRET)
    ).is_success
    row = wait_for_status(event["id"])

    def listed_task() -> dict[str, Any] | None:
        tasks = httpx.get(
            f"{flower_server.url}/api/tasks",
            params={"taskname": "stripe.customer.created"},
            auth=CREDENTIALS,
            timeout=5,
        ).json()
        for task in tasks.values():
            # The message carries a batch of row ids of its type (here a batch of one).
            if row.id in json.loads(task["args"])[0] and task["state"] == "SUCCESS":
                return task
        return None

    task = wait_until(listed_task, f"stripe.customer.created [[{row.id}]] in Flower", flower_server)
    assert task["name"] == "stripe.customer.created"
    assert task["worker"].startswith("celery@")


def test_flower_inspects_the_worker_and_its_queues_under_the_key_prefix(flower_server, worker):
    workers = httpx.get(
        f"{flower_server.url}/api/workers", params={"refresh": 1}, auth=CREDENTIALS, timeout=10
    ).json()
    assert workers, "Flower's inspect calls reached no worker"
    queues = {q["name"] for info in workers.values() for q in info.get("active_queues", [])}
    assert queues == {"webhooks", "emails", "maintenance"}

    lengths = httpx.get(
        f"{flower_server.url}/api/queues/length", auth=CREDENTIALS, timeout=10
    ).json()
    assert {q["name"] for q in lengths["active_queues"]} == queues
