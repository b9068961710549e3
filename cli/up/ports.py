"""Ports for `billing up`: the usual one when it is free, another free one when it is not."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from cli.up.errors import UpError

HOST = "127.0.0.1"
DEFAULT_PORTS = {"api": 8000, "flower": 5555, "smtp": 1025, "postgres": 5432, "redis": 6379}


@dataclass(frozen=True)
class Ports:
    """The ports of one run; None for a server the settings replace (DATABASE_URL, REDIS_URL,
    SMTP_URL), which this run does not start."""

    api: int
    flower: int
    smtp: int | None
    postgres: int | None
    redis: int | None


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


def plan_ports(
    *,
    api: int | None,
    remembered: Mapping[str, int],
    embedded_database: bool,
    embedded_redis: bool,
    mail_sink: bool,
) -> Ports:
    """The ports of this run: `api` (from --port) exactly, or refused when taken; the others
    their usual port when free, else a free one.

    The servers' last ports (`remembered`) come first, so that a psql or a Redis client keeps
    working across restarts; the API, Flower and the sink go back to their usual ports
    whenever free.
    """
    preferred = {**DEFAULT_PORTS, **remembered}
    taken: set[int] = set()
    if api is not None:
        if not is_free(api):
            raise UpError(f"port {api} (--port) is in use; pick another or leave --port out.")
        taken.add(api)
    else:
        api = preferred_or_free(preferred["api"], taken)
    postgres = preferred_or_free(preferred["postgres"], taken) if embedded_database else None
    redis = preferred_or_free(preferred["redis"], taken) if embedded_redis else None
    return Ports(
        api=api,
        flower=preferred_or_free(preferred["flower"], taken),
        smtp=preferred_or_free(preferred["smtp"], taken) if mail_sink else None,
        postgres=postgres,
        redis=redis,
    )
