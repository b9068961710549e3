"""The reconciliation's Stripe transport: paced under the configured rate, and patient with
429 answers, against a real HTTP server."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import stripe

from core.settings import load_settings
from core.stripe_rate_limit import (
    BACKOFF_MAX_SECONDS,
    RateLimitedRequestsClient,
    RequestPacer,
    rate_for,
)
from tests.support.stripe_fake import StripeFake, rate_limited


@pytest.fixture
def fake() -> Iterator[StripeFake]:
    with StripeFake().running() as running:
        yield running


def list_once(client: stripe.StripeClient) -> stripe.ListObject:
    return client.v1.subscriptions.list(params={"limit": 1})


def test_the_default_rates_are_20_in_test_mode_and_80_live():
    assert rate_for(load_settings(stripe_test_mode=True)) == 20
    assert rate_for(load_settings(stripe_test_mode=False, app_env="test")) == 80
    assert rate_for(load_settings(stripe_rate_limit_test=5)) == 5


def test_requests_are_paced_under_the_rate(fake):
    transport = RateLimitedRequestsClient(rate=20)
    client = fake.client(http_client=transport)
    started = time.monotonic()
    for _ in range(11):
        list_once(client)
    elapsed = time.monotonic() - started
    # 11 requests at 20/s: at least 10 intervals of 50 ms between the first and the last.
    assert elapsed >= 0.5
    assert transport.requests_sent == 11


def test_the_pacer_spaces_threads_too():
    now = [0.0]
    slept: list[float] = []
    pacer = RequestPacer(10, clock=lambda: now[0], sleep=slept.append)
    for _ in range(3):
        pacer.wait()
    assert slept == pytest.approx([0.1, 0.2])


def test_a_429_is_waited_out_for_retry_after_and_asked_again(fake):
    slept: list[float] = []
    transport = RateLimitedRequestsClient(rate=1000, sleep=slept.append)
    fake.fail_next = [rate_limited(retry_after="3")] * 2

    answer = list_once(fake.client(http_client=transport))

    assert answer.object == "list"
    assert fake.list_calls() == 3
    assert transport.rate_limited == 2
    assert [s for s in slept if s >= 1] == [3.0, 3.0]


def test_without_retry_after_the_backoff_is_bounded_and_jittered(fake):
    slept: list[float] = []
    transport = RateLimitedRequestsClient(rate=1000, sleep=slept.append)
    fake.fail_next = [rate_limited()] * 4

    list_once(fake.client(http_client=transport))

    assert fake.list_calls() == 5 and transport.rate_limited == 4
    backoffs = slept[-4:]
    assert all(0 <= s <= BACKOFF_MAX_SECONDS for s in backoffs)


def test_429s_that_outlast_the_retries_reach_the_caller_as_rate_limit_errors(fake):
    transport = RateLimitedRequestsClient(rate=1000, retries=2, sleep=lambda _: None)
    fake.fail_next = [rate_limited()] * 100

    with pytest.raises(stripe.RateLimitError):
        list_once(fake.client(http_client=transport))
    assert fake.list_calls() == 3
