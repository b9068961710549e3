"""Which failures are worth retrying (lost connections and timeouts, never bad data), and
how long to wait before the next try."""

from __future__ import annotations

import socket

import kombu.exceptions
import psycopg
import redis.exceptions
import sqlalchemy.exc
import stripe
from celery.utils.time import get_exponential_backoff_interval

from billing.events import NotYetKnown

__all__ = ["NotYetKnown", "is_transient", "retry_delay"]

RETRY_BACKOFF_FACTOR_SECONDS = 2
RETRY_BACKOFF_MAX_SECONDS = 600


def is_transient(exc: BaseException) -> bool:
    """True for lost connections and timeouts to the database, the broker or Stripe, for
    Stripe's 429 and 5xx answers, and for `NotYetKnown`. A Stripe 404, a card error or bad
    data is permanent."""
    if isinstance(exc, NotYetKnown):
        return True
    if isinstance(exc, stripe.StripeError):
        if isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError):
            return True
        return exc.http_status is not None and exc.http_status >= 500
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        # psycopg's OperationalError covers lost connections, server shutdown, deadlocks and
        # serialisation failures; a DataError or IntegrityError is the data's fault.
        return exc.connection_invalidated or isinstance(exc.orig, psycopg.OperationalError)
    return isinstance(
        exc,
        sqlalchemy.exc.TimeoutError  # pool exhausted
        | psycopg.OperationalError
        | redis.exceptions.ConnectionError
        | redis.exceptions.TimeoutError
        | kombu.exceptions.OperationalError
        | ConnectionError
        | TimeoutError
        | socket.timeout,
    )


def retry_delay(retries: int) -> int:
    """Exponential backoff with full jitter: 0-2 s, 0-4 s, 0-8 s, ... capped at ten minutes."""
    return get_exponential_backoff_interval(
        factor=RETRY_BACKOFF_FACTOR_SECONDS,
        retries=retries,
        maximum=RETRY_BACKOFF_MAX_SECONDS,
        full_jitter=True,
    )
