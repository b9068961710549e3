"""The one place that builds a Stripe client from settings."""

from __future__ import annotations

import logging

import stripe

from core.settings import Settings

# Stripe's own advice: retry network errors (the library adds idempotency keys to POSTs) and
# bound every call, so a slow Stripe never holds a worker or a request thread for long.
NETWORK_RETRIES = 2
TIMEOUT_SECONDS = 20

# The library logs every response, and every error's message, at INFO; a message can quote a
# masked key or what a user typed. Its warnings still pass.
logging.getLogger("stripe").setLevel(logging.WARNING)


def stripe_unavailable_reason(settings: Settings) -> str | None:
    """Why these settings give no Stripe client, as every caller says it; None when they do."""
    if not settings.stripe_enabled:
        return "Stripe is off: STRIPE_ENABLED is false."
    if not settings.stripe_secret_key:
        return f"Stripe is not configured: {settings.stripe_secret_key_variable} is not set."
    return None


def make_stripe_client(
    settings: Settings, *, http_client: stripe.HTTPClient | None = None
) -> stripe.StripeClient | None:
    """A client with the key of the configured mode, or None when Stripe is off or unkeyed.
    `http_client` replaces the default transport (the reconciliation's rate-limited one)."""
    if stripe_unavailable_reason(settings) is not None:
        return None
    base = settings.stripe_api_base.rstrip("/")
    return stripe.StripeClient(
        settings.stripe_secret_key,
        # Objects we fetch then have the shape the fixtures prove, whatever the account's
        # default version or the library's own pin.
        stripe_version=settings.stripe_api_version,
        base_addresses={"api": base} if base else None,
        max_network_retries=NETWORK_RETRIES,
        http_client=http_client or stripe.RequestsClient(timeout=TIMEOUT_SECONDS),
    )
