"""`customer.subscription.paused` / `.resumed`: a paused subscription has no plan and earns no
period credits; resuming restores them; each is told once."""

from __future__ import annotations

import pytest

from tests.support.stripe_events import (
    API_VERSIONS,
    CREDITS,
    Ids,
    account,
    balance,
    emails,
    known_customer,
    process_ok,
    redelivered,
    stripe_event,
    subscription,
)

NOW = 1_800_000_000


def renewal_after(ids: Ids, api_version: str, *, start: int, created: int) -> dict:
    """A paid renewal whose service period begins at `start`."""
    event = stripe_event("invoice.paid", ids, api_version=api_version, created=created)
    for line in event["data"]["object"]["lines"]["data"]:
        line["period"] = {"start": start, "end": start + 30 * 86_400}
    return event


@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_a_pause_takes_the_plan_and_the_period_credits_and_a_resume_restores_them(api_version):
    ids = known_customer(Ids())
    process_ok(stripe_event("customer.subscription.created", ids, api_version=api_version))
    assert account(ids.customer).plan == "pro"

    paused = stripe_event("customer.subscription.paused", ids, api_version=api_version, created=NOW)
    process_ok(paused)
    process_ok(redelivered(paused))
    assert subscription(ids.subscription).status == "paused"
    assert account(ids.customer).plan == "free"
    (notice,) = emails(f"subscription-paused:{ids.subscription}")
    assert (notice.template, notice.recipients) == ("subscription_paused", [ids.email])

    # A period that began while paused grants nothing.
    process_ok(renewal_after(ids, api_version, start=NOW + 10, created=NOW + 10))
    assert balance(ids.customer) == 0

    resumed = stripe_event(
        "customer.subscription.resumed", ids, api_version=api_version, created=NOW + 20
    )
    process_ok(resumed)
    process_ok(redelivered(resumed))
    assert subscription(ids.subscription).status == "active"
    assert account(ids.customer).plan == "pro"
    (notice,) = emails(f"subscription-resumed:{ids.subscription}")
    assert notice.template == "subscription_resumed"

    # The next paid period grants its credits again.
    process_ok(renewal_after(ids.next_invoice(), api_version, start=NOW + 30, created=NOW + 30))
    assert balance(ids.customer) == CREDITS["pro"]


def test_a_late_pause_after_a_resume_changes_nothing_and_says_nothing():
    ids = known_customer(Ids())
    process_ok(stripe_event("customer.subscription.resumed", ids, created=NOW + 20))
    process_ok(stripe_event("customer.subscription.paused", ids, created=NOW))

    assert subscription(ids.subscription).status == "active"
    assert emails(f"subscription-paused:{ids.subscription}") == []


def test_a_period_paid_before_the_pause_keeps_its_credits():
    ids = known_customer(Ids())
    process_ok(stripe_event("customer.subscription.paused", ids, created=NOW))
    # Delivered late: its period (the fixtures', in 2026) began long before the pause.
    process_ok(stripe_event("invoice.paid", ids, created=NOW - 60))

    assert balance(ids.customer) == CREDITS["pro"]
