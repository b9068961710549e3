"""The files under ./var/ that one `billing up` leaves for the next, and for `billing trigger`.

`up.lock` keeps a second `billing up` out of the directory; `ports.json` remembers the embedded
servers' ports across runs; `up.json` exists while the platform runs and tells `billing
trigger` where the API is and what secret signs its webhooks.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from cli.up.errors import UpError
from cli.up.ports import Ports

VAR_DIR = Path("var")
LOCK_FILE = "up.lock"
STATE_FILE = "up.json"
PORTS_FILE = "ports.json"
# Only the servers' ports are worth keeping: clients of the data (psql, redis-cli) hold them.
REMEMBERED = ("postgres", "redis")


@contextlib.contextmanager
def only_run_here(var_dir: Path) -> Iterator[None]:
    """Hold the directory's lock for the whole run; another `billing up` here is refused."""
    path = var_dir / LOCK_FILE
    with path.open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UpError(
                f"another billing up is running in this directory (it holds {path})."
            ) from None
        yield


def remembered_ports(var_dir: Path) -> dict[str, int]:
    """The embedded servers' ports of the last run; nothing when the file is missing or odd."""
    try:
        ports = json.loads((var_dir / PORTS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(ports, dict):
        return {}
    return {
        name: port
        for name, port in ports.items()
        if name in REMEMBERED and isinstance(port, int) and 0 < port < 65536
    }


def remember_ports(var_dir: Path, ports: Ports) -> None:
    chosen = {"postgres": ports.postgres, "redis": ports.redis}
    (var_dir / PORTS_FILE).write_text(json.dumps({k: v for k, v in chosen.items() if v}))


def write_run_state(
    var_dir: Path, *, api_url: str, webhook_secret: str, settings: Mapping[str, str]
) -> None:
    """What `billing trigger` needs of this run; created private, since it holds the secret.

    `settings` are the variables `billing up` gave the platform (its made-up plan prices),
    so that triggered events name prices the platform knows.
    """
    state = {
        "api_url": api_url,
        "webhook_secret": webhook_secret,
        "settings": dict(settings),
        "pid": os.getpid(),
    }
    path = var_dir / STATE_FILE
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(state, file)


def remove_run_state(var_dir: Path) -> None:
    (var_dir / STATE_FILE).unlink(missing_ok=True)
