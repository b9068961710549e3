"""Fixtures of the billing tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tasks.events.handlers import common, disputes, refunds
from tests.support.stripe_fake import StripeFake


@pytest.fixture
def stripe_fake(monkeypatch) -> Iterator[StripeFake]:
    """The Stripe fake over HTTP, with the event handlers' Stripe client pointed at it."""
    with StripeFake().running() as fake:
        for module in (common, disputes, refunds):
            monkeypatch.setattr(module, "stripe_client", fake.client)
        yield fake
