"""Fixtures of the billing tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from billing.context import BillingContext
from tests.support.stripe_events import billing_context, using_stripe
from tests.support.stripe_fake import StripeFake


@pytest.fixture
def stripe_fake() -> Iterator[StripeFake]:
    """The Stripe fake over HTTP; the events applied meanwhile (`process`) and `billing_ctx`
    get a context whose Stripe client is the fake's."""
    with StripeFake().running() as fake, using_stripe(fake.client()):
        yield fake


@pytest.fixture
def billing_ctx(request: pytest.FixtureRequest) -> BillingContext:
    """The context to call `billing` with directly: with the fake's client when the test also
    uses `stripe_fake`, else with Stripe off."""
    if "stripe_fake" in request.fixturenames:
        request.getfixturevalue("stripe_fake")
    return billing_context()
