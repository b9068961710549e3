"""The Compose file's healthcheck commands, run for real against this run's worker, beat and
API: a healthcheck that always passes is worse than none. (The file's static checks are in
tests/unit/test_compose.py.)"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from tests.support.compose import SERVICES, healthcheck, run_healthcheck
from tests.support.processes import BILLING, ManagedProcess


def test_the_worker_healthcheck_pings_its_own_node_only(worker):
    this_node = run_healthcheck(healthcheck("worker"), HOSTNAME=socket.gethostname())
    # Another container's name must not pass (a short wait: nobody will answer).
    other_node = run_healthcheck(
        healthcheck("worker", replace={"--timeout 10": "--timeout 1"}),
        HOSTNAME="no-such-worker",
    )

    assert this_node.wait(timeout=30) == 0, this_node.stdout.read()
    assert other_node.wait(timeout=30) != 0


def test_the_beat_healthcheck_answers_while_beat_runs(tmp_path, monkeypatch):
    command = SERVICES["beat"]["command"]
    # Its own working directory (the schedule goes under ./var), and nothing due for an hour.
    monkeypatch.chdir(tmp_path)
    beat = ManagedProcess([*BILLING, *command[1:]], env={"SWEEP_INTERVAL_SECONDS": "3600"})
    beat.start()
    try:
        beat.wait_for_log("beat pidbox: Connected")
        check = run_healthcheck(healthcheck("beat"), HOSTNAME=socket.gethostname())
        assert check.wait(timeout=30) == 0, check.stdout.read()
        assert list((tmp_path / "var").glob("celerybeat-schedule*"))
    finally:
        beat.stop()


def test_the_api_healthcheck_passes_while_the_api_is_ready(api_server):
    port = urlsplit(api_server.url).port
    check = run_healthcheck(healthcheck("api", replace={"127.0.0.1:8000": f"127.0.0.1:{port}"}))

    assert check.wait(timeout=30) == 0, check.stdout.read()
