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


def make_stripe_client(
    settings: Settings, *, http_client: stripe.HTTPClient | None = None
) -> stripe.StripeClient | None:
    """A client with the key of the configured mode, or None when Stripe is off or unkeyed.
    `http_client` replaces the default transport (the reconciliation's rate-limited one)."""
    if not settings.stripe_enabled or not settings.stripe_secret_key:
        return None
    base = settings.stripe_api_base.rstrip("/")
    return stripe.StripeClient(
        settings.stripe_secret_key,
        base_addresses={"api": base} if base else None,
        max_network_retries=NETWORK_RETRIES,
        http_client=http_client or stripe.RequestsClient(timeout=TIMEOUT_SECONDS),
    )
