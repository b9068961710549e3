"""`invoice.upcoming`: a renewal notice for plans billed yearly or longer; monthly plans only
with RENEWAL_NOTICE_MONTHLY; never for a subscription that will not renew; once per period."""

from __future__ import annotations

from typing import Any

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
    with_settings,
)

NOW = 1_800_000_000
YEAR = 365 * 86_400


def upcoming(ids: Ids, api_version: str, *, yearly: bool) -> dict[str, Any]:
    """The fixture's upcoming renewal; `yearly` bills a year, in the place its version says:
    the line's price or plan interval where it has one, else the line's period."""
    event = stripe_event("invoice.upcoming", ids, api_version=api_version, created=NOW)
    if yearly:
        for line in event["data"]["object"]["lines"]["data"]:
            line["period"]["end"] = line["period"]["start"] + YEAR
            for key in ("price", "plan"):
                recurring = line.get(key) or {}
                recurring = recurring.get("recurring", recurring) if key == "price" else recurring
                if "interval" in recurring:
                    recurring["interval"] = "year"
    return event


@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_a_yearly_renewal_is_announced_once(api_version):
    ids = known_customer(Ids())
    event = upcoming(ids, api_version, yearly=True)
    process_ok(event)
    process_ok(redelivered(event))

    (notice,) = emails(f"renewal-upcoming:{ids.subscription}")
    assert notice.template == "renewal_upcoming"
    assert notice.recipients == [ids.email]
    assert notice.context["yearly"] is True
    assert notice.context["renews_at"] == PERIOD_END
    assert (notice.context["amount"], notice.context["plan_name"]) == (2900, "Pro")


@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_a_monthly_renewal_is_announced_only_when_asked(api_version):
    ids = known_customer(Ids())
    process_ok(upcoming(ids, api_version, yearly=False))
    assert emails(f"renewal-upcoming:{ids.subscription}") == []

    process_ok(upcoming(ids, api_version, yearly=False), with_settings(renewal_notice_monthly=True))
    (notice,) = emails(f"renewal-upcoming:{ids.subscription}")
    assert notice.context["yearly"] is False


def test_a_subscription_set_to_cancel_gets_no_renewal_notice():
    ids = known_customer(Ids())
    canceling = stripe_event("customer.subscription.updated", ids, created=NOW - 60)
    canceling["data"]["object"]["cancel_at_period_end"] = True
    process_ok(canceling)
    process_ok(upcoming(ids, API_VERSIONS[-1], yearly=True))

    assert emails(f"renewal-upcoming:{ids.subscription}") == []
