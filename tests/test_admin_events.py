"""The admin API over stored events, behind ADMIN_API_TOKEN."""

from __future__ import annotations

import pytest

from tests.conftest import make_client
from tests.support.events import make_event, store_directly, wait_for_status

EVENTS = "/api/admin/webhook-events"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dGVzdA=="}],
    ids=["none", "wrong-token", "not-bearer"],
)
def test_the_admin_api_refuses_without_the_token(client, headers):
    response = client.get(EVENTS, headers=headers)
    assert response.status_code == 401
    assert response.json()["detail"]


def test_the_admin_api_is_off_without_a_configured_token():
    with make_client(admin_api_token="") as unconfigured:
        response = unconfigured.get(EVENTS, headers={"Authorization": "Bearer anything"})
    assert response.status_code == 503
    assert "ADMIN_API_TOKEN" in response.json()["detail"]


def test_one_event_shows_the_contract_fields(client, admin_headers):
    event = make_event("invoice.paid")
    store_directly(event, status="failed", attempts=2, last_error="ValueError: bad")

    body = client.get(f"{EVENTS}/{event['id']}", headers=admin_headers).json()

    assert {
        "id",
        "type",
        "status",
        "attempts",
        "last_error",
        "received_at",
        "processed_at",
        "api_version",
        "livemode",
    } <= set(body)
    assert (body["id"], body["status"], body["attempts"]) == (event["id"], "failed", 2)
    assert body["last_error"] == "ValueError: bad"
    assert body["payload"]["id"] == event["id"]


def test_an_unknown_event_is_404(client, admin_headers):
    response = client.get(f"{EVENTS}/evt_unknown", headers=admin_headers)
    assert response.status_code == 404
    assert client.post(f"{EVENTS}/evt_unknown/replay", headers=admin_headers).status_code == 404


def test_the_list_filters_by_status_and_type_newest_first(client, admin_headers):
    kind = f"test.kind_{make_event()['id']}"
    first, second, other = (make_event(kind) for _ in range(3))
    store_directly(first, status="failed")
    store_directly(second, status="failed")
    store_directly(other, status="ignored")

    items = client.get(
        EVENTS, params={"status": "failed", "type": kind}, headers=admin_headers
    ).json()["items"]

    assert [item["id"] for item in items] == [second["id"], first["id"]]


def test_the_list_limit_is_honoured_and_capped(client, admin_headers):
    kind = f"test.kind_{make_event()['id']}"
    for _ in range(3):
        store_directly(make_event(kind), status="ignored")

    limited = client.get(EVENTS, params={"type": kind, "limit": 2}, headers=admin_headers)
    too_many = client.get(EVENTS, params={"limit": 501}, headers=admin_headers)
    bad_status = client.get(EVENTS, params={"status": "lost"}, headers=admin_headers)

    assert len(limited.json()["items"]) == 2
    assert too_many.status_code == 422
    assert "limit" in too_many.json()["detail"]
    assert bad_status.status_code == 422


def test_replay_runs_a_failed_event_again(client, admin_headers, worker):
    event = make_event("invoice.paid")
    store_directly(event, status="failed", attempts=1, last_error="ValueError: bad")

    response = client.post(f"{EVENTS}/{event['id']}/replay", headers=admin_headers)

    assert response.status_code == 202
    assert response.json() == {"event_id": event["id"], "status": "queued"}
    row = wait_for_status(event["id"], ("processed",))
    assert row.attempts == 2
    assert row.last_error is None


def test_replay_from_the_command_line(worker):
    import subprocess
    import sys

    event = make_event("invoice.paid")
    store_directly(event, status="processed", attempts=1)

    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "replay", event["id"]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert f"{event['id']} queued" in result.stdout
    assert wait_for_status(event["id"], ("processed",)).attempts == 2
