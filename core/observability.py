"""Logging and Sentry set-up shared by the API and the worker."""

from __future__ import annotations

import logging

import sentry_sdk

from core.settings import Settings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format=LOG_FORMAT)


def init_sentry(settings: Settings, *, component: str) -> None:
    """Report errors to Sentry when SENTRY_DSN is set; otherwise do nothing."""
    if not settings.sentry_dsn:
        return
    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        environment=settings.app_env,
        release=settings.release or None,
        # Keep personal data (emails, IPs, request bodies, SQL parameters) out of Sentry:
        # handlers hold Stripe objects with customer emails in their local variables, which
        # the SDK would otherwise attach to every exception's frames.
        data_collection={
            "user_info": False,
            "http_bodies": [],
            "database_query_data": False,
            "stack_frame_variables": False,
        },
        traces_sample_rate=0.0,
    )
    sentry_sdk.set_tag("component", component)


def redact_email(address: str) -> str:
    """`jane.doe@example.com` → `j***@example.com`: enough to tell people apart in a log."""
    local, _, domain = address.partition("@")
    if not domain:
        return "***"
    return f"{local[:1]}***@{domain}"
