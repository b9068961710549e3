"""Which failures are worth retrying: lost connections and timeouts, never bad data."""

from __future__ import annotations

import socket

import kombu.exceptions
import psycopg
import redis.exceptions
import sqlalchemy.exc
import stripe


def is_transient(exc: BaseException) -> bool:
    """True for lost connections and timeouts to the database, the broker or Stripe, and for
    Stripe's 429 and 5xx answers. A Stripe 404, a card error or bad data is permanent."""
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
