"""What the billing rules need besides the session, handed to them explicitly."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import stripe

from core.plans import Catalogue, load_catalogue
from core.settings import Settings
from core.stripe_client import make_stripe_client
from core.stripe_objects import StripeDict


class StripeNotConfigured(RuntimeError):
    """A rule that must call Stripe was run while Stripe is off or has no key."""


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class BillingContext:
    """The Stripe client (None while Stripe is off or has no key: rules then work from the
    event alone), the plan catalogue, the settings and a clock. Built once per process by
    the API's lifespan and by the worker, and built by tests with a fake clock or client."""

    settings: Settings
    catalogue: Catalogue
    stripe: stripe.StripeClient | None
    clock: Callable[[], datetime] = field(default=utc_now)
    # Hands a committed `email_log` row to the sender (the worker publishes `emails.send`, the
    # API the same task by name); None leaves it to the email sweep.
    send_email: Callable[[int], None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> BillingContext:
        values: dict[str, Any] = {
            "settings": settings,
            "catalogue": load_catalogue(settings),
            "stripe": make_stripe_client(settings),
        }
        values.update(overrides)
        return cls(**values)

    def now(self) -> datetime:
        return self.clock()

    def require_stripe(self) -> stripe.StripeClient:
        """The Stripe client, for a rule that cannot work without Stripe."""
        if self.stripe is None:
            raise StripeNotConfigured("Stripe is off or has no secret key")
        return self.stripe

    def retrieve(self, call: Callable[[stripe.StripeClient], Any]) -> StripeDict | None:
        """Stripe's object as a dict; None when Stripe is off, or does not know the object
        (or, like an old API version or a fake, has no such route). Lost connections and
        5xx still raise, so the caller's task retries."""
        if self.stripe is None:
            return None
        try:
            return call(self.stripe).to_dict()
        except stripe.InvalidRequestError as exc:
            if exc.http_status in (400, 404):
                return None
            raise
