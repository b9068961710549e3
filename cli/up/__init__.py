"""`billing up`: the whole platform on one machine, in one terminal.

The API, a worker, beat, Flower and a mail sink, against DATABASE_URL and REDIS_URL when they
are set, else against a PostgreSQL and a Redis of its own under ./var/ (see `embedded`).
Ctrl-C stops the platform first, then the servers, and leaves no process behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click
import httpx
from sqlalchemy.engine import make_url

from cli.sample_events import placeholder_price
from cli.up.embedded import (
    EmbeddedError,
    prepare_postgres,
    prepare_redis,
    wait_for_postgres,
    wait_for_redis,
)
from cli.up.ports import HOST, is_free, preferred_or_free
from cli.up.supervisor import Output, Supervisor
from core.settings import PAID_PLANS, ConfigurationError, Settings, load_settings

if TYPE_CHECKING:
    from cli.up.mail_sink import MailSink

VAR_DIR = Path("var")
# Written while the platform runs: `billing trigger` finds the API and the secret here.
STATE_FILE = "up.json"
PORTS_FILE = "ports.json"
DEFAULT_PORTS = {"api": 8000, "flower": 5555, "smtp": 1025, "postgres": 5432, "redis": 6379}
BILLING = [sys.executable, "-m", "cli.main"]
PLATFORM = ("api", "worker", "beat", "flower")
API_READY_TIMEOUT_SECONDS = 60.0
# Admin alerts of a bare development run; example.com never receives mail, and the sink
# catches it first anyway.
DEVELOPMENT_ADMIN = "admin@example.com"


class UpError(Exception):
    """`billing up` cannot go on; the message is one sentence."""


class StoppedDuringStartup(Exception):
    """Ctrl-C (or SIGTERM) arrived before the platform was ready."""


@dataclass
class Plan:
    """What this run will use, decided before anything starts."""

    api_port: int
    flower_port: int
    smtp_port: int
    postgres_port: int | None
    redis_port: int | None
    database_url: str
    redis_url: str
    webhook_secret: str
    secret_generated: bool
    smtp_url: str | None
    development_defaults: dict[str, str]
    log_format: str


@click.command()
@click.option("--port", type=int, default=None, help="API port [default: 8000, or a free one]")
def up(port: int | None) -> None:
    """Run the API, a worker, beat, Flower and a mail sink together (Ctrl-C stops all)."""
    output = Output()
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        click.echo(f"billing: configuration error: {exc}", err=True)
        sys.exit(2)
    VAR_DIR.mkdir(exist_ok=True)
    try:
        with _only_run_here(VAR_DIR / "up.lock"):
            code = _run(settings, _plan(settings, port), output)
    except (UpError, EmbeddedError) as exc:
        click.echo(f"billing up: {exc}", err=True)
        sys.exit(1)
    sys.exit(code)


@contextlib.contextmanager
def _only_run_here(path: Path) -> Iterator[None]:
    with path.open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UpError(
                f"another billing up is running in this directory (it holds {path})."
            ) from None
        yield


def _plan(settings: Settings, port: int | None) -> Plan:
    given = settings.model_fields_set
    # The servers' last ports first, so that a psql or a Redis client keeps working across
    # restarts; the API, Flower and the sink go back to their usual ports whenever free.
    preferred = {**DEFAULT_PORTS, **_remembered_ports()}
    taken: set[int] = set()
    if port is not None:
        if not is_free(port):
            raise UpError(f"port {port} (--port) is in use; pick another or leave --port out.")
        taken.add(port)
        api_port = port
    else:
        api_port = preferred_or_free(preferred["api"], taken)
    embedded_db = "database_url" not in given
    embedded_redis = "redis_url" not in given
    postgres_port = preferred_or_free(preferred["postgres"], taken) if embedded_db else None
    redis_port = preferred_or_free(preferred["redis"], taken) if embedded_redis else None
    smtp_url = settings.smtp_url or None
    secret, generated = _webhook_secret(settings)
    plan = Plan(
        api_port=api_port,
        flower_port=preferred_or_free(preferred["flower"], taken),
        smtp_port=preferred_or_free(preferred["smtp"], taken) if smtp_url is None else 0,
        postgres_port=postgres_port,
        redis_port=redis_port,
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        webhook_secret=secret,
        secret_generated=generated,
        smtp_url=smtp_url,
        development_defaults=_development_defaults(settings),
        log_format=settings.log_format if "log_format" in given else "text",
    )
    _remember_ports(plan)
    return plan


def _remembered_ports() -> dict[str, int]:
    try:
        ports = json.loads((VAR_DIR / PORTS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(ports, dict):
        return {}
    return {
        name: port
        for name, port in ports.items()
        if name in ("postgres", "redis") and isinstance(port, int) and 0 < port < 65536
    }


def _remember_ports(plan: Plan) -> None:
    ports = {"postgres": plan.postgres_port, "redis": plan.redis_port}
    (VAR_DIR / PORTS_FILE).write_text(json.dumps({k: v for k, v in ports.items() if v}))


def _webhook_secret(settings: Settings) -> tuple[str, bool]:
    """The configured secret, or one made for this checkout and kept in ./var/ across runs."""
    if settings.webhook_secrets:
        return settings.stripe_webhook_secret, False
    path = VAR_DIR / "webhook-secret"
    if path.exists():
        return path.read_text().strip(), True
    secret = f"whsec_{secrets.token_urlsafe(24)}"
    path.touch(mode=0o600)
    path.write_text(secret + "\n")
    return secret, True


def _run(settings: Settings, plan: Plan, output: Output) -> int:
    supervisor = Supervisor(output)
    stop_requested = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        if stop_requested.is_set():
            # A second Ctrl-C: no more waiting for graceful shutdowns.
            for child in supervisor.children:
                child.signal_group(signal.SIGKILL)
        stop_requested.set()

    def go_on() -> None:
        if stop_requested.is_set():
            raise StoppedDuringStartup

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    sink = _mail_sink(plan, output)
    state_file = VAR_DIR / STATE_FILE
    code = 0
    try:
        if sink is not None:
            from cli.up.mail_sink import MailSinkError  # importable: the sink was made

            try:
                sink.start()
            except MailSinkError as exc:
                raise UpError(str(exc)) from None
        env = _start_servers(supervisor, plan, output, stop_requested)
        env.update(_platform_env(plan, sink))
        go_on()
        output.say("migrating the database")
        if supervisor.run_to_end("migrate", [*BILLING, "db", "upgrade"], env=env) != 0:
            go_on()
            raise UpError("the migrations failed: see the migrate lines above.")
        go_on()
        _start_platform(supervisor, plan, env)
        _wait_for_api(plan, supervisor, stop_requested)
        go_on()
        _write_state(state_file, plan)
        _print_urls(output, plan, sink, settings)
        while not stop_requested.wait(0.5):
            gone = supervisor.exited()
            if gone is not None:
                output.say(f"{gone.name} exited with code {gone.process.returncode}: stopping")
                code = 1
                break
    except StoppedDuringStartup:
        output.say("stopped before the platform was ready")
    except (UpError, EmbeddedError) as exc:
        output.say(str(exc))
        code = 1
    finally:
        output.say("stopping")
        supervisor.stop(lambda child: child.name in PLATFORM)
        supervisor.stop()
        if sink is not None:
            sink.stop()
        state_file.unlink(missing_ok=True)
        output.say("stopped")
    return code


def _mail_sink(plan: Plan, output: Output) -> MailSink | None:
    """The local mail sink, unless SMTP_URL sends mail elsewhere."""
    if plan.smtp_url is not None:
        return None
    # Imported here: aiosmtpd comes with the `embedded` extra, which the Docker image (whose
    # `billing` must still start) does not install.
    try:
        from cli.up.mail_sink import MailSink
    except ModuleNotFoundError:
        raise UpError(
            "the mail sink needs the embedded extra: pip install -e '.[embedded]' (make up "
            "does), or set SMTP_URL."
        ) from None
    return MailSink(VAR_DIR / "outbox", plan.smtp_port, lambda text: output.line("mail", text))


def _write_state(path: Path, plan: Plan) -> None:
    """What `billing trigger` needs of this run; created private, since it holds the secret."""
    state = {
        "api_url": f"http://{HOST}:{plan.api_port}",
        "webhook_secret": plan.webhook_secret,
        # The prices the platform was given, so triggered events name them.
        "settings": plan.development_defaults,
        "pid": os.getpid(),
    }
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(state, file)


def _start_servers(
    supervisor: Supervisor, plan: Plan, output: Output, stop: threading.Event
) -> dict[str, str]:
    """Start the embedded servers the settings do not replace; the environment they imply."""
    env = dict(os.environ)
    try:
        if plan.postgres_port is not None:
            output.say(
                f"starting the embedded PostgreSQL (var/postgres) on port {plan.postgres_port}"
            )
            spec = prepare_postgres(VAR_DIR, plan.postgres_port)
            postgres = supervisor.start(
                spec.name,
                spec.argv,
                env=env,
                user=spec.user,
                stop_signal=signal.SIGINT,
                death_signal=signal.SIGINT,
            )
            wait_for_postgres(plan.postgres_port, lambda: postgres.alive and not stop.is_set())
            plan.database_url = spec.url
        if plan.redis_port is not None:
            output.say(f"starting the embedded Redis (var/redis) on port {plan.redis_port}")
            spec = prepare_redis(VAR_DIR, plan.redis_port)
            redis = supervisor.start(spec.name, spec.argv, env=env, death_signal=signal.SIGTERM)
            wait_for_redis(plan.redis_port, lambda: redis.alive and not stop.is_set())
            plan.redis_url = spec.url
    except EmbeddedError:
        if stop.is_set():
            raise StoppedDuringStartup from None
        raise
    return env


def _platform_env(plan: Plan, sink: MailSink | None) -> dict[str, str]:
    return {
        "DATABASE_URL": plan.database_url,
        "REDIS_URL": plan.redis_url,
        "STRIPE_WEBHOOK_SECRET": plan.webhook_secret,
        "SMTP_URL": plan.smtp_url or (sink.smtp_url if sink else ""),
        "PYTHONUNBUFFERED": "1",
        # Readable lines in a terminal, unless the user asked for JSON.
        "LOG_FORMAT": plan.log_format,
        **plan.development_defaults,
    }


def _development_defaults(settings: Settings) -> dict[str, str]:
    """What a bare development checkout lacks for the platform to show what it does.

    Without a Stripe key no price can be real, so each paid plan without a price gets the
    made-up id `billing trigger` uses (its events then grant the plan's credits), and admin
    alerts (disputes) go to an address whose mail lands in the sink.
    """
    if settings.app_env != "development":
        return {}
    defaults: dict[str, str] = {}
    if not settings.stripe_secret_key_test and not settings.stripe_secret_key_live:
        mode = "test" if settings.stripe_test_mode else "live"
        for plan_id in PAID_PLANS:
            if not getattr(settings, f"stripe_price_{plan_id}_{mode}"):
                defaults[f"STRIPE_PRICE_{plan_id.upper()}_{mode.upper()}"] = placeholder_price(
                    plan_id
                )
    if not settings.admin_addresses:
        defaults["ADMIN_EMAILS"] = DEVELOPMENT_ADMIN
    return defaults


def _metrics_env() -> dict[str, str]:
    """One Prometheus directory for the API and the worker, so /metrics shows both."""
    metrics_dir = VAR_DIR / "prometheus"
    # Multiprocess metrics files of a previous run would be added to this run's counters.
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir()
    return {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir.resolve())}


def _start_platform(supervisor: Supervisor, plan: Plan, env: dict[str, str]) -> None:
    # Beat and Flower stay out of the metrics directory: Flower's own Prometheus series
    # would otherwise show up in the API's /metrics.
    measured = {**env, **_metrics_env()}
    supervisor.start("api", [*BILLING, "api", "--port", str(plan.api_port)], env=measured)
    supervisor.start("worker", [*BILLING, "worker", "-n", "up@%h"], env=measured)
    supervisor.start("beat", [*BILLING, "beat"], env=env)
    supervisor.start("flower", [*BILLING, "flower", "--port", str(plan.flower_port)], env=env)


def _wait_for_api(plan: Plan, supervisor: Supervisor, stop: threading.Event) -> None:
    url = f"http://{HOST}:{plan.api_port}/healthz"
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


def _without_password(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _print_urls(output: Output, plan: Plan, sink: MailSink | None, settings: Settings) -> None:
    api = f"http://{HOST}:{plan.api_port}"
    database = "embedded, var/postgres" if plan.postgres_port else "DATABASE_URL"
    redis = "embedded, var/redis" if plan.redis_port else "REDIS_URL"
    mail = f"{sink.smtp_url} → var/outbox/" if sink is not None else "SMTP_URL (yours)"
    lines = [
        "ready:",
        f"  API        {api}   (docs {api}/docs, metrics {api}/metrics)",
        f"  webhook    {api}/api/stripe/webhook",
        f"  Flower     http://{HOST}:{plan.flower_port}",
        f"  mail       {mail}",
        f"  database   {_without_password(plan.database_url)}   ({database})",
        f"  redis      {_without_password(plan.redis_url)}   ({redis})",
    ]
    if plan.secret_generated:
        # The contract's development mode: a made-up secret is printed so that a local
        # sender (billing trigger, a test script) can sign with it. Never a configured one.
        lines.append(
            f"  webhook secret (made for this checkout, var/webhook-secret): {plan.webhook_secret}"
        )
    if not settings.stripe_enabled or not settings.stripe_secret_key:
        lines.append(
            f"  Stripe API calls are skipped: no {settings.stripe_secret_key_variable} is set."
        )
    for name, value in plan.development_defaults.items():
        lines.append(f"  {name}={value} (development default)")
    if not settings.auth_jwt_secret:
        lines.append("  the user API answers 503 until AUTH_JWT_SECRET is set.")
    lines.append("try: billing trigger checkout.session.completed   (Ctrl-C stops everything)")
    for line in lines:
        output.say(line)
