"""Ports for `billing up`: the usual one when it is free, another free one when it is not."""

from __future__ import annotations

import contextlib
import socket

HOST = "127.0.0.1"


def is_free(port: int, host: str = HOST) -> bool:
    with socket.socket() as sock:
        # Without SO_REUSEADDR a port in TIME_WAIT from the last run would look taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    # Something may listen on another address of this machine only (0.0.0.0 vs 127.0.0.1).
    with contextlib.closing(socket.socket()) as probe:
        probe.settimeout(0.2)
        return probe.connect_ex((host, port)) != 0


def any_free_port(host: str = HOST) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def preferred_or_free(preferred: int, taken: set[int]) -> int:
    """The preferred port if nobody listens on it, else one the kernel says is free.

    `taken` holds the ports already chosen for other servers of this run, which are not
    listening yet and so would look free.
    """
    if preferred not in taken and is_free(preferred):
        taken.add(preferred)
        return preferred
    while True:
        port = any_free_port()
        if port not in taken:
            taken.add(port)
            return port
