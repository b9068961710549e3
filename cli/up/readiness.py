"""Waiting for what `billing up` started to answer, and giving up in one sentence when it
dies, takes too long, or the user stops the run."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

import httpx

from cli.up.embedded import EmbeddedError
from cli.up.errors import StoppedDuringStartup, UpError
from cli.up.supervisor import Child, Supervisor

API_READY_TIMEOUT_SECONDS = 60.0


@contextlib.contextmanager
def stop_explains_failures(stop: threading.Event) -> Iterator[None]:
    """Around the embedded servers' start: once Ctrl-C came, their failing is the stop
    reaching them (initdb interrupted, a wait called off), not an error to report."""
    try:
        yield
    except EmbeddedError:
        if stop.is_set():
            raise StoppedDuringStartup from None
        raise


def alive_until_stopped(child: Child, stop: threading.Event) -> Callable[[], bool]:
    """For an embedded server's wait: go on while the server lives and no stop came."""
    return lambda: child.alive and not stop.is_set()


def wait_for_api(url: str, supervisor: Supervisor, stop: threading.Event) -> None:
    """Poll the API's /healthz until it answers 200, while every child lives."""
    deadline = time.monotonic() + API_READY_TIMEOUT_SECONDS
    while not stop.is_set():
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        gone = supervisor.exited()
        if gone is not None:
            raise UpError(f"{gone.name} exited with code {gone.process.returncode} while starting.")
        if time.monotonic() > deadline:
            limit = f"{API_READY_TIMEOUT_SECONDS:.0f} s"
            raise UpError(f"the API did not answer on {url} within {limit}.")
        time.sleep(0.2)
