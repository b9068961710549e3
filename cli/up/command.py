"""`billing up`: the whole platform on one machine, in one terminal.

The API, a worker, beat, Flower and a mail sink, against DATABASE_URL and REDIS_URL when they
are set, else against a PostgreSQL and a Redis of its own under ./var/ (see `embedded`).
Ctrl-C stops the platform first, then the servers, and leaves no process behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from typing import TYPE_CHECKING

import click

from cli.up.embedded import (
    EmbeddedError,
    prepare_postgres,
    prepare_redis,
    wait_for_postgres,
    wait_for_redis,
)
from cli.up.environment import metrics_env, platform_env
from cli.up.errors import StoppedDuringStartup, UpError
from cli.up.plan import Plan, plan_run
from cli.up.ports import HOST
from cli.up.readiness import alive_until_stopped, stop_explains_failures, wait_for_api
from cli.up.state import VAR_DIR, only_run_here, remove_run_state, write_run_state
from cli.up.summary import DEVELOPMENT_ADMIN, print_summary
from cli.up.supervisor import Output, Supervisor
from core.settings import ConfigurationError, Settings, load_settings

if TYPE_CHECKING:
    from cli.up.mail_sink import MailSink

BILLING = [sys.executable, "-m", "cli.main"]
PLATFORM = ("api", "worker", "email-worker", "beat", "flower")


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
        with only_run_here(VAR_DIR):
            code = _run(settings, plan_run(settings, api_port=port, var_dir=VAR_DIR), output)
    except (UpError, EmbeddedError) as exc:
        click.echo(f"billing up: {exc}", err=True)
        sys.exit(1)
    sys.exit(code)


def _run(settings: Settings, plan: Plan, output: Output) -> int:
    """Start everything in order, watch it until Ctrl-C or a child's exit, then stop it all."""
    supervisor = Supervisor(output)
    stop = _stop_on_signals(supervisor)
    sink = _mail_sink(plan, output)
    sink_url = sink.smtp_url if sink is not None else None
    api_url = f"http://{HOST}:{plan.ports.api}"
    code = 0
    try:
        _start_sink(sink)
        env = dict(os.environ)
        _start_embedded_servers(supervisor, plan, env, stop)
        env.update(platform_env(plan, sink_url=sink_url))
        _migrate(supervisor, env, stop)
        console_link = (
            _development_admin(env, api_url) if settings.app_env == "development" else None
        )
        _start_platform(supervisor, plan, env)
        wait_for_api(f"{api_url}/healthz", supervisor, stop)
        _go_on(stop)
        write_run_state(
            VAR_DIR,
            api_url=api_url,
            webhook_secret=plan.webhook_secret,
            settings=plan.development_defaults,
        )
        print_summary(output, plan, settings, sink_url=sink_url, console_link=console_link)
        code = _watch(supervisor, stop)
    except StoppedDuringStartup:
        output.say("stopped before the platform was ready")
    except (UpError, EmbeddedError) as exc:
        output.say(str(exc))
        code = 1
    finally:
        _stop_everything(supervisor, sink)
    return code


def _stop_on_signals(supervisor: Supervisor) -> threading.Event:
    """Ctrl-C and SIGTERM ask for a stop; the event they set is what every step checks."""
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        if stop.is_set():
            # A second Ctrl-C: no more waiting for graceful shutdowns.
            for child in supervisor.children:
                child.signal_group(signal.SIGKILL)
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    return stop


def _go_on(stop: threading.Event) -> None:
    if stop.is_set():
        raise StoppedDuringStartup


def _mail_sink(plan: Plan, output: Output) -> MailSink | None:
    """The local mail sink, unless SMTP_URL sends mail elsewhere."""
    if plan.ports.smtp is None:
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
    return MailSink(VAR_DIR / "outbox", plan.ports.smtp, lambda text: output.line("mail", text))


def _start_sink(sink: MailSink | None) -> None:
    if sink is None:
        return
    from cli.up.mail_sink import MailSinkError  # importable: the sink was made

    try:
        sink.start()
    except MailSinkError as exc:
        raise UpError(str(exc)) from None


def _start_embedded_servers(
    supervisor: Supervisor, plan: Plan, env: dict[str, str], stop: threading.Event
) -> None:
    """Start the embedded servers the settings do not replace; the plan gets their URLs."""
    with stop_explains_failures(stop):
        if plan.ports.postgres is not None:
            plan.database_url = _start_postgres(supervisor, plan.ports.postgres, env, stop)
        if plan.ports.redis is not None:
            plan.redis_url = _start_redis(supervisor, plan.ports.redis, env, stop)


def _start_postgres(
    supervisor: Supervisor, port: int, env: dict[str, str], stop: threading.Event
) -> str:
    supervisor.output.say(f"starting the embedded PostgreSQL (var/postgres) on port {port}")
    spec = prepare_postgres(VAR_DIR, port)
    # A backstop: billing up prints URLs masked, but a child's line might show one.
    supervisor.output.hide(spec.password)
    postgres = supervisor.start(
        spec.name,
        spec.argv,
        env=env,
        user=spec.user,
        stop_signal=signal.SIGINT,
        death_signal=signal.SIGINT,
    )
    wait_for_postgres(port, spec.password, alive_until_stopped(postgres, stop))
    return spec.url


def _start_redis(
    supervisor: Supervisor, port: int, env: dict[str, str], stop: threading.Event
) -> str:
    supervisor.output.say(f"starting the embedded Redis (var/redis) on port {port}")
    spec = prepare_redis(VAR_DIR, port)
    supervisor.output.hide(spec.password)
    redis = supervisor.start(
        spec.name, spec.argv, env=env, stdin=spec.stdin, death_signal=signal.SIGTERM
    )
    wait_for_redis(port, spec.password, alive_until_stopped(redis, stop))
    return spec.url


def _migrate(supervisor: Supervisor, env: dict[str, str], stop: threading.Event) -> None:
    _go_on(stop)
    supervisor.output.say("migrating the database")
    if supervisor.run_to_end("migrate", [*BILLING, "db", "upgrade"], env=env) != 0:
        _go_on(stop)
        raise UpError("the migrations failed: see the migrate lines above.")
    _go_on(stop)


def _development_admin(env: dict[str, str], api_url: str) -> str:
    """The development console admin, and a fresh one-time link to set its password."""
    result = subprocess.run(
        [*BILLING, "admin", "create", DEVELOPMENT_ADMIN, "--url", api_url, "--link-only"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise UpError(f"the development admin could not be made: {result.stderr.strip()[-300:]}")
    return result.stdout.strip()


def _start_platform(supervisor: Supervisor, plan: Plan, env: dict[str, str]) -> None:
    # Beat and Flower stay out of the metrics directory: Flower's own Prometheus series
    # would otherwise show up in the API's /metrics.
    measured = {**env, **metrics_env(VAR_DIR)}
    api, flower = str(plan.ports.api), str(plan.ports.flower)
    supervisor.start("api", [*BILLING, "api", "--port", api], env=measured)
    # Events in a pool of their own, emails and maintenance in another: a slow SMTP server
    # then delays only the emails (docs/operations.md, Queues).
    events = [*BILLING, "worker", "-Q", "webhooks", "-n", "up@%h"]
    supervisor.start("worker", events, env=measured)
    emails = [*BILLING, "worker", "-Q", "emails,maintenance", "-n", "up-emails@%h"]
    supervisor.start("email-worker", [*emails, "-P", "threads", "-c", "8"], env=measured)
    supervisor.start("beat", [*BILLING, "beat"], env=env)
    supervisor.start("flower", [*BILLING, "flower", "--port", flower], env=env)


def _watch(supervisor: Supervisor, stop: threading.Event) -> int:
    """Until Ctrl-C (0) or the first child that exits on its own (1)."""
    while not stop.wait(0.5):
        gone = supervisor.exited()
        if gone is not None:
            supervisor.output.say(
                f"{gone.name} exited with code {gone.process.returncode}: stopping"
            )
            return 1
    return 0


def _stop_everything(supervisor: Supervisor, sink: MailSink | None) -> None:
    supervisor.output.say("stopping")
    # The platform first, while the servers it writes to still answer.
    supervisor.stop(lambda child: child.name in PLATFORM)
    supervisor.stop()
    if sink is not None:
        sink.stop()
    remove_run_state(VAR_DIR)
    supervisor.output.say("stopped")
