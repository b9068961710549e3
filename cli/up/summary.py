"""The lines `billing up` prints once the platform answers: where everything is, and what a
bare development run stands in for."""

from __future__ import annotations

from sqlalchemy.engine import make_url

from cli.up.embedded import POSTGRES_PASSWORD_FILE, REDIS_PASSWORD_FILE
from cli.up.plan import Plan
from cli.up.ports import HOST
from cli.up.supervisor import Output
from core.settings import Settings

# The console admin `billing up` makes in development: a documented placeholder address, not
# a person's, so it is printed whole.
DEVELOPMENT_ADMIN = "admin@example.com"


def print_summary(
    output: Output,
    plan: Plan,
    settings: Settings,
    *,
    sink_url: str | None,
    console_link: str | None = None,
) -> None:
    for line in (*_addresses(plan, sink_url), *_development_notes(plan, settings)):
        output.say(line)
    if console_link:
        output.say(f"  console admin {DEVELOPMENT_ADMIN}: set its password once at {console_link}")
    output.say("try: billing trigger checkout.session.completed   (Ctrl-C stops everything)")


def _addresses(plan: Plan, sink_url: str | None) -> list[str]:
    api = f"http://{HOST}:{plan.ports.api}"
    # Passwords masked; the embedded servers' are in private files, named here.
    database = (
        f"embedded, var/postgres; password in var/{POSTGRES_PASSWORD_FILE}"
        if plan.ports.postgres
        else "DATABASE_URL"
    )
    redis = (
        f"embedded, var/redis; password in var/{REDIS_PASSWORD_FILE}"
        if plan.ports.redis
        else "REDIS_URL"
    )
    mail = f"{sink_url} → var/outbox/" if sink_url is not None else "SMTP_URL (yours)"
    return [
        "ready:",
        f"  API        {api}   (docs {api}/docs, metrics {api}/metrics)",
        f"  console    {api}/console/",
        f"  webhook    {api}/api/stripe/webhook",
        f"  Flower     http://{HOST}:{plan.ports.flower}",
        f"  mail       {mail}",
        f"  database   {_without_password(plan.database_url)}   ({database})",
        f"  redis      {_without_password(plan.redis_url)}   ({redis})",
    ]


def _development_notes(plan: Plan, settings: Settings) -> list[str]:
    lines: list[str] = []
    if plan.secret_generated:
        # Development without STRIPE_WEBHOOK_SECRET: the made-up secret is printed so that a
        # local sender (billing trigger, a test script) can sign with it. Never a configured one.
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
    return lines


def _without_password(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
