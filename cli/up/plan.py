"""What one `billing up` will use, decided from the settings before anything starts."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from cli.up.embedded import kept_secret
from cli.up.environment import development_defaults
from cli.up.ports import Ports, plan_ports
from cli.up.state import remember_ports, remembered_ports
from core.settings import Settings


@dataclass
class Plan:
    """What this run will use; the URLs change once the embedded servers are up."""

    ports: Ports
    database_url: str
    redis_url: str
    webhook_secret: str
    secret_generated: bool
    smtp_url: str | None
    development_defaults: dict[str, str]
    log_format: str


def plan_run(settings: Settings, *, api_port: int | None, var_dir: Path) -> Plan:
    """Settle ports, secret and defaults; the embedded servers' ports are remembered."""
    given = settings.model_fields_set
    smtp_url = settings.smtp_url or None
    ports = plan_ports(
        api=api_port,
        remembered=remembered_ports(var_dir),
        embedded_database="database_url" not in given,
        embedded_redis="redis_url" not in given,
        mail_sink=smtp_url is None,
    )
    secret, generated = webhook_secret(settings, var_dir)
    plan = Plan(
        ports=ports,
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        webhook_secret=secret,
        secret_generated=generated,
        smtp_url=smtp_url,
        development_defaults=development_defaults(settings),
        log_format=settings.log_format if "log_format" in given else "text",
    )
    remember_ports(var_dir, ports)
    return plan


def webhook_secret(settings: Settings, var_dir: Path) -> tuple[str, bool]:
    """The configured secret, or one made for this checkout and kept in ./var/ across runs;
    and whether it was made here."""
    if settings.webhook_secrets:
        return settings.stripe_webhook_secret, False
    secret = kept_secret(var_dir / "webhook-secret", lambda: f"whsec_{secrets.token_urlsafe(24)}")
    return secret, True
