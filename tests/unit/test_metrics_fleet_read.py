"""The fleet series' database read has a deadline: a scrape never waits on a database
that does not answer. (The series themselves, read from PostgreSQL, are
tests/test_metrics.py.)"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

from api.routes import metrics
from core.settings import load_settings


def test_a_database_that_never_answers_holds_a_scrape_up_to_its_deadline_only(monkeypatch):
    monkeypatch.setattr(metrics, "FLEET_READ_TIMEOUT_SECONDS", 0.3)
    with _silent_server() as port:
        silent = load_settings(database_url=f"postgresql://postgres@127.0.0.1:{port}/billing")
        started = time.perf_counter()
        state = asyncio.run(metrics.read_fleet_state(silent))
        elapsed = time.perf_counter() - started

    assert state is None
    assert 0.3 <= elapsed < 1


@contextmanager
def _silent_server() -> Iterator[int]:
    """A port whose connections the kernel accepts and nobody ever answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]
