"""The Stripe client pins STRIPE_API_VERSION; events in versions outside the proven range are
processed all the same, and counted."""

from __future__ import annotations

import pytest
import stripe
from prometheus_client import REGISTRY

from core.settings import load_settings
from core.stripe_client import make_stripe_client
from core.stripe_versions import NEWEST_PROVEN
from tests.support.stripe_events import (
    CREDITS,
    Ids,
    balance,
    known_customer,
    process_ok,
    stripe_event,
)
from tests.support.stripe_fake import StripeFake


@pytest.mark.parametrize("pinned", [None, "2025-09-30.clover"])
def test_every_call_carries_the_pinned_version(pinned):
    overrides = {"stripe_api_version": pinned} if pinned else {}
    with StripeFake().running() as fake:
        settings = load_settings(
            stripe_api_base=fake.url, stripe_secret_key_test="sk_test_pinned", **overrides
        )
        client = make_stripe_client(settings)
        assert client is not None
        with pytest.raises(stripe.InvalidRequestError):
            client.v1.customers.retrieve("cus_unknown")
    assert fake.headers[-1]["stripe-version"] == (pinned or NEWEST_PROVEN)


def unproven(event_type: str, standing: str) -> float:
    labels = {"type": event_type, "standing": standing}
    return REGISTRY.get_sample_value("billing_events_unproven_api_version_total", labels) or 0


@pytest.mark.parametrize(
    ("shape", "version", "standing"),
    [
        ("2017-08-15", "2016-07-06", "older"),
        ("2026-10-28.endive", "2027-03-31.fig", "newer"),
    ],
)
def test_an_event_in_an_unproven_version_is_processed_and_counted(shape, version, standing):
    ids = known_customer(Ids())
    before = unproven("invoice.paid", standing)
    event = stripe_event("invoice.paid", ids, api_version=shape)
    event["api_version"] = version
    process_ok(event)

    assert balance(ids.customer) == CREDITS["pro"]
    assert unproven("invoice.paid", standing) == before + 1


def test_an_event_in_a_proven_version_is_not_counted():
    ids = known_customer(Ids())
    before = sum(unproven("invoice.paid", s) for s in ("older", "newer", "unknown"))
    process_ok(stripe_event("invoice.paid", ids))
    assert sum(unproven("invoice.paid", s) for s in ("older", "newer", "unknown")) == before
