"""A Stripe transport that stays under a request rate and waits out 429 answers.

Stripe allows about 25 requests a second in test mode and 100 live, shared by everything
that uses the key. A long scan such as the nightly reconciliation must leave room for the
webhooks' own calls, so it paces itself below a configured rate (STRIPE_RATE_LIMIT_TEST /
STRIPE_RATE_LIMIT_LIVE) and, when Stripe still answers 429, waits (its `Retry-After` when
given, else exponential backoff with jitter) and asks again, before the stripe library ever
sees the 429. Only when the retries run out does the 429 reach the caller, as
`stripe.RateLimitError`.

The pacing is per process: one reconciliation runs at a time, whatever the number of workers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import stripe
from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_attempt
from tenacity.wait import wait_random_exponential

from core.settings import Settings
from core.stripe_client import TIMEOUT_SECONDS

log = logging.getLogger(__name__)

RATE_LIMIT_RETRIES = 6
BACKOFF_INITIAL_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0

Response = tuple[Any, int, Mapping[str, str]]


def rate_for(settings: Settings) -> float:
    """Requests per second allowed in the configured mode."""
    if settings.stripe_test_mode:
        return settings.stripe_rate_limit_test
    return settings.stripe_rate_limit_live


class RequestPacer:
    """Spaces requests at least 1/rate apart (no bursts), across the threads of a process."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("a request rate must be positive")
        self.interval = 1.0 / rate
        self._clock, self._sleep = clock, sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        """Block until this request's slot comes."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            self._sleep(slot - now)


def _is_rate_limited(response: Response) -> bool:
    return response[1] == 429


def _retry_after(state: RetryCallState) -> float | None:
    outcome = state.outcome
    if outcome is None or outcome.failed:
        return None
    headers = outcome.result()[2] or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return min(float(value), BACKOFF_MAX_SECONDS) if value is not None else None
    except ValueError:
        return None


class RateLimitedRequestsClient(stripe.RequestsClient):
    """`stripe.RequestsClient` paced by a `RequestPacer`, retrying 429 answers with backoff.

    Stripe's own retries (connection errors, 409, 5xx) call `request` again, so they are
    paced too."""

    def __init__(
        self,
        *,
        rate: float,
        retries: int = RATE_LIMIT_RETRIES,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        super().__init__(timeout=timeout)
        self.pacer = RequestPacer(rate, sleep=sleep)
        self.requests_sent = 0
        self.rate_limited = 0
        # Full jitter: several processes told 429 at once do not come back at once.
        backoff = wait_random_exponential(
            multiplier=BACKOFF_INITIAL_SECONDS, max=BACKOFF_MAX_SECONDS
        )
        self._retrying = Retrying(
            retry=retry_if_result(_is_rate_limited),
            wait=lambda state: _retry_after(state) or backoff(state),
            stop=stop_after_attempt(retries + 1),
            sleep=sleep,
            before_sleep=self._note_rate_limited,
            # Out of retries: hand the last 429 to the stripe library, which raises it.
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
    ) -> Response:
        return self._retrying(self._paced, super().request, method, url, headers, post_data)

    def request_stream(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
    ) -> Response:
        return self._retrying(self._paced, super().request_stream, method, url, headers, post_data)

    def _paced(self, send: Callable[..., Response], *args: Any) -> Response:
        self.pacer.wait()
        self.requests_sent += 1
        return send(*args)

    def _note_rate_limited(self, state: RetryCallState) -> None:
        self.rate_limited += 1
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning("Stripe answered 429; retry %d in %.1fs", state.attempt_number, wait)


def rate_limited_http_client(settings: Settings) -> RateLimitedRequestsClient:
    """The transport of the configured mode's rate."""
    return RateLimitedRequestsClient(rate=rate_for(settings))
