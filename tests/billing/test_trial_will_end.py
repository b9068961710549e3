"""`customer.subscription.trial_will_end`: the `trial_ending` email, only while the
subscription is still trialing and not set to cancel; once per trial."""

from __future__ import annotations

import pytest

from tests.support.stripe_events import (
    API_VERSIONS,
    PERIOD_END,
    Ids,
    emails,
    known_customer,
    process_ok,
    redelivered,
    stripe_event,
    subscription,
)

NOW = 1_800_000_000


@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_a_trial_about_to_end_is_told_once(api_version):
    ids = known_customer(Ids())
    event = stripe_event(
        "customer.subscription.trial_will_end", ids, api_version=api_version, created=NOW
    )
    process_ok(event)
    process_ok(redelivered(event))

    assert subscription(ids.subscription).status == "trialing"
    (notice,) = emails(f"trial-ending:{ids.subscription}")
    assert notice.template == "trial_ending"
    assert notice.recipients == [ids.email]
    assert (notice.context["plan_name"], notice.context["trial_end"]) == ("Pro", PERIOD_END)


@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_a_trial_set_to_cancel_gets_no_reminder(api_version):
    ids = known_customer(Ids())
    event = stripe_event(
        "customer.subscription.trial_will_end", ids, api_version=api_version, created=NOW
    )
    event["data"]["object"]["cancel_at_period_end"] = True
    process_ok(event)

    assert emails(f"trial-ending:{ids.subscription}") == []


def test_a_trial_converted_since_gets_no_reminder():
    ids = known_customer(Ids())
    process_ok(stripe_event("customer.subscription.updated", ids, created=NOW + 60))  # active
    process_ok(stripe_event("customer.subscription.trial_will_end", ids, created=NOW))

    assert subscription(ids.subscription).status == "active"
    assert emails(f"trial-ending:{ids.subscription}") == []
