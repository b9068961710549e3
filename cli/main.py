"""The `billing` command."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import click

from core.log_setup import configure_logging, logging_config
from core.settings import ConfigurationError, Settings, load_settings

CONTEXT = {"help_option_names": ["-h", "--help"]}
PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True, **CONTEXT}


def _settings() -> Settings:
    """The settings, or exit with the one sentence that says what is wrong."""
    from core import settings as settings_module
    from core.plans import load_catalogue

    try:
        settings = load_settings()
        load_catalogue(settings)
    except ConfigurationError as exc:
        click.echo(f"billing: configuration error: {exc}", err=True)
        sys.exit(2)
    settings_module.get_settings.cache_clear()
    return settings


@click.group(context_settings=CONTEXT)
def main() -> None:
    """Stripe billing platform: webhooks, credits, subscriptions and disputes."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="uvicorn processes")
@click.option("--access-log/--no-access-log", default=False, show_default=True)
def api(host: str, port: int, workers: int, access_log: bool) -> None:
    """Run the FastAPI app under uvicorn."""
    import uvicorn

    settings = _settings()
    configure_logging(settings)
    if workers > 1:
        _share_metrics_between_processes()
    uvicorn.run(
        "api.main:app",
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        proxy_headers=True,
        log_level="info",
        # uvicorn applies it in each of its processes, instead of its own text handlers.
        log_config=logging_config(settings),
    )


def _share_metrics_between_processes() -> None:
    """Prometheus multiprocess mode for uvicorn's processes: without it each process would
    answer `/metrics` with its own counts only, a different one at each scrape. An operator's
    PROMETHEUS_MULTIPROC_DIR is kept; otherwise an empty directory of this run's own is made
    (and removed at exit), before any process imports prometheus_client."""
    from core.metrics import MULTIPROC_DIR_VARIABLE

    if os.environ.get(MULTIPROC_DIR_VARIABLE):
        return
    directory = tempfile.mkdtemp(prefix="billing-api-metrics-")
    os.environ[MULTIPROC_DIR_VARIABLE] = directory
    atexit.register(shutil.rmtree, directory, ignore_errors=True)


@main.command(context_settings=PASS_THROUGH)
@click.pass_context
def worker(ctx: click.Context) -> None:
    """Run a Celery worker (task events on) on every queue, unless -Q says otherwise."""
    _settings()
    from tasks.celery_app import ALL_QUEUES
    from tasks.celery_app import app as celery_app

    argv = ["worker", "-E", "--loglevel=INFO", *ctx.args]
    if not any(arg in ("-Q", "--queues") or arg.startswith("--queues=") for arg in ctx.args):
        argv += ["-Q", ",".join(ALL_QUEUES)]
    celery_app.worker_main(argv)


@main.command(context_settings=PASS_THROUGH)
@click.pass_context
def beat(ctx: click.Context) -> None:
    """Run the Celery beat scheduler (the sweep, the nightly reconciliation, reminders)."""
    settings = _settings()
    from tasks.celery_app import app as celery_app

    schedule = Path("var") / "celerybeat-schedule"
    schedule.parent.mkdir(exist_ok=True)
    # Celery's --quiet drops the banner, so every line of JSON output is one JSON object.
    quiet = ["--quiet"] if settings.log_format == "json" else []
    celery_app.start([*quiet, "beat", "--loglevel=INFO", f"--schedule={schedule}", *ctx.args])


@main.group()
def db() -> None:
    """Database schema."""


@db.command()
def upgrade() -> None:
    """Apply the Alembic migrations to DATABASE_URL."""
    from db.migrate import upgrade as run_upgrade

    settings = _settings()
    try:
        run_upgrade(settings)
    except Exception as exc:
        click.echo(f"billing: migration failed: {str(exc).splitlines()[0]}", err=True)
        sys.exit(1)
    click.echo("database is up to date")


@main.group()
def events() -> None:
    """Archived months of webhook_events (WEBHOOK_EVENTS_RETENTION_MONTHS)."""


@events.command()
def archive() -> None:
    """Archive now the months past WEBHOOK_EVENTS_RETENTION_MONTHS (the daily job's work)."""
    settings = _settings()
    from tasks.events.archive import archive_expired_months

    if settings.webhook_events_retention_months is None:
        click.echo("WEBHOOK_EVENTS_RETENTION_MONTHS is unset: every month is kept")
        return
    for label, rows in archive_expired_months(settings).items():
        click.echo(f"{label}: " + ("pending rows, left online" if rows is None else f"{rows} rows"))


@events.command()
@click.option("--month", required=True, help="YYYY-MM (or `legacy`: the rows before 0016)")
def restore(month: str) -> None:
    """Bring an archived month of webhook_events back online."""
    import psycopg

    settings = _settings()
    from tasks.events.archive import ArchiveError, archive_store, restore_month, table_of

    try:
        table_of(month)
    except ValueError:
        raise click.BadParameter("must be YYYY-MM or legacy", param_hint="--month") from None
    with psycopg.connect(settings.libpq_url, autocommit=True) as conn:
        try:
            archived, restored = restore_month(conn, archive_store(settings), month)
        except ArchiveError as exc:
            click.echo(f"billing: {exc}", err=True)
            sys.exit(1)
    click.echo(f"{month}: {restored} of {archived} archived rows restored")


@main.group()
def emails() -> None:
    """Email templates."""


@emails.command()
@click.option(
    "--out",
    "out_dir",
    default="var/email-preview",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
)
def preview(out_dir: Path) -> None:
    """Render every email with sample data into HTML and text files."""
    from emails.preview import write_previews

    index = write_previews(_settings(), out_dir)
    click.echo(f"open {index}")


@main.command()
@click.argument("event_id")
def replay(event_id: str) -> None:
    """Run a stored event through its handler again."""
    settings = _settings()
    from billing.replay import mark_for_replay
    from db.models import EventStatus
    from db.session import transaction
    from tasks.events import outbox

    with transaction() as session:
        row = mark_for_replay(session, stripe_event_id=event_id, live=not settings.stripe_test_mode)
        if row is None:
            click.echo(f"billing: no stored event {event_id}", err=True)
            sys.exit(1)
    if row.status == EventStatus.QUEUED:
        outbox.publish([(row.id, row.type)])
    click.echo(f"{event_id} {row.status}")


@main.command()
@click.option("--dry-run", is_flag=True, help="Compare and report only: change nothing.")
def reconcile(dry_run: bool) -> None:
    """Compare every Stripe subscription with the local copy now, and print the report."""
    settings = _settings()
    from core.stripe_client import stripe_unavailable_reason
    from tasks.reconciliation.report import print_report
    from tasks.reconciliation.run import dry_run as reconcile_dry
    from tasks.reconciliation.run import load_report
    from tasks.reconciliation.run import reconcile as run
    from tasks.reconciliation.task import reconciliation_client

    if unavailable := stripe_unavailable_reason(settings):
        raise click.ClickException(unavailable)
    client = reconciliation_client(settings)
    assert client is not None  # the settings allow one
    if dry_run:
        report = reconcile_dry(client=client)
    else:
        run_id, status = run(client=client, trigger="cli")
        if status is None:
            click.echo(f"billing: reconciliation run {run_id} is already going", err=True)
            sys.exit(1)
        report = load_report(run_id=run_id)
        assert report is not None
    print_report(report, echo=click.echo)
    if report.status != "succeeded":
        sys.exit(1)


@main.group()
def admin() -> None:
    """Console admins."""


@admin.command("create")
@click.argument("email")
@click.option(
    "--url",
    default="http://127.0.0.1:8000",
    show_default=True,
    help="The API's address as the admin's browser reaches it.",
)
@click.option("--link-only", is_flag=True, help="Print the link alone (for scripts).")
def admin_create(email: str, url: str, link_only: bool) -> None:
    """Create a console admin (or renew one's link) and print a one-time set-password link."""
    _settings()
    from core.redaction import redact_email
    from db.admins import SETUP_LINK_LIFETIME, issue_setup_token
    from db.session import transaction

    if "@" not in email or len(email) > 320 or not email.isprintable():
        raise click.BadParameter("not an email address", param_hint="EMAIL")
    with transaction() as session:
        admin, token = issue_setup_token(session, email=email)
        renewed = admin.password_hash is not None
    link = f"{url.rstrip('/')}/console/set-password?token={token}"
    if link_only:
        click.echo(link)
        return
    hours = int(SETUP_LINK_LIFETIME.total_seconds() // 3600)
    state = "has a password; this link replaces it" if renewed else "created"
    click.echo(f"admin {redact_email(admin.email)} {state}")
    click.echo(f"set the password within {hours} hours, once: {link}")


# Commands with a module of their own (imported late: `billing --help` stays fast).
def _register_commands() -> None:
    from cli.flower import flower
    from cli.trigger import trigger
    from cli.up import up

    for command in (up, flower, trigger):
        main.add_command(command)


_register_commands()

if __name__ == "__main__":
    main()
