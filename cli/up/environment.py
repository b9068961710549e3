"""The environment `billing up` gives its children: the URLs and secret of this run, and
what a bare development checkout lacks."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from cli.sample_events import placeholder_price
from core.settings import PAID_PLANS, Settings

if TYPE_CHECKING:
    from cli.up.plan import Plan

# Admin alerts of a bare development run; example.com never receives mail, and the sink
# catches it first anyway.
DEVELOPMENT_ADMIN = "admin@example.com"


def development_defaults(settings: Settings) -> dict[str, str]:
    """What a bare development checkout lacks for the platform to show what it does.

    Without a Stripe key no price can be real, so each paid plan without a price gets the
    made-up id `billing trigger` uses (its events then grant the plan's credits), and admin
    alerts (disputes) go to an address whose mail lands in the sink.
    """
    if settings.app_env != "development":
        return {}
    defaults: dict[str, str] = {}
    if not settings.stripe_secret_key_test and not settings.stripe_secret_key_live:
        for plan_id in PAID_PLANS:
            if settings.price_id(plan_id) is None:
                defaults[settings.price_variable(plan_id)] = placeholder_price(plan_id)
    if not settings.admin_addresses:
        defaults["ADMIN_EMAILS"] = DEVELOPMENT_ADMIN
    return defaults


def platform_env(plan: Plan, *, sink_url: str | None) -> dict[str, str]:
    """The variables every child of the platform gets on top of this process's environment."""
    return {
        "DATABASE_URL": plan.database_url,
        "REDIS_URL": plan.redis_url,
        "STRIPE_WEBHOOK_SECRET": plan.webhook_secret,
        "SMTP_URL": plan.smtp_url or sink_url or "",
        "PYTHONUNBUFFERED": "1",
        # Readable lines in a terminal, unless the user asked for JSON.
        "LOG_FORMAT": plan.log_format,
        **plan.development_defaults,
    }


def metrics_env(var_dir: Path) -> dict[str, str]:
    """One Prometheus directory for the API and the worker, so /metrics shows both."""
    metrics_dir = var_dir / "prometheus"
    # Multiprocess metrics files of a previous run would be added to this run's counters.
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir()
    return {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir.resolve())}
