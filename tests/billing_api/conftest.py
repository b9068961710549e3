"""Fixtures of the user billing API: signed user tokens, and the app pointed at a Stripe fake
over HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient

from tests.conftest import JWT_SECRET, make_client
from tests.support.stripe_events import Ids, known_customer, process_ok, stripe_event
from tests.support.stripe_fake import TEST_KEY, StripeFake

# Parametrize lists mint tokens at import: they must outlive a whole suite on a busy machine.
TOKEN_LIFETIME_SECONDS = 6 * 3600


def user_token(user_id: str, email: str | None = None, **claims: Any) -> str:
    """A token as the host application mints it."""
    payload: dict[str, Any] = {
        "sub": user_id,
        "exp": int(time.time()) + TOKEN_LIFETIME_SECONDS,
        **claims,
    }
    if email is not None:
        payload["email"] = email
    return jwt.encode(payload, JWT_SECRET, algorithm="HS256")


def auth(user_id: str, email: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {user_token(user_id, email)}"}


@pytest.fixture
def fake() -> Iterator[StripeFake]:
    with StripeFake().running() as running:
        yield running


@pytest.fixture
def api(fake: StripeFake) -> Iterator[TestClient]:
    """The app with its Stripe client pointed at the fake. The Checkout window is an hour, so
    that two requests of a test never straddle its edge."""
    with make_client(
        stripe_api_base=fake.url,
        stripe_secret_key_test=TEST_KEY,
        checkout_idempotency_window_seconds=3600,
    ) as client:
        yield client


@dataclass(frozen=True)
class Subscriber:
    ids: Ids
    headers: dict[str, str]


def subscriber(
    fake: StripeFake | None = None, *, api_version: str = "2025-09-30.clover"
) -> Subscriber:
    """A user whose customer and `pro` subscription the platform learnt from webhooks, and
    whom the fake (when given) knows too."""
    ids = known_customer(Ids())
    process_ok(stripe_event("customer.subscription.created", ids, api_version=api_version))
    if fake is not None:
        fake.add_customer(ids.customer, user_id=ids.user_id)
        fake.subscriptions[ids.subscription] = stripe_event(
            "customer.subscription.created", ids, api_version=api_version
        )["data"]["object"]
    return Subscriber(ids=ids, headers=auth(ids.user_id, ids.email))
