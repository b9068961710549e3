"""Checkouts that end without money: a failed delayed payment grants nothing and says what the
session was for; an expired session is kept and counted once, and gets a recovery email only
with CHECKOUT_RECOVERY_EMAILS and the customer's consent to promotions."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from db.checkout_expirations import expired_checkouts
from db.session import new_session
from tests.support.stripe_events import (
    API_VERSIONS,
    Ids,
    account,
    emails,
    known_customer,
    ledger,
    process_ok,
    redelivered,
    stripe_event,
    with_settings,
)


@pytest.mark.parametrize("variant", ["", "payment"])
@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_a_failed_delayed_payment_grants_nothing_and_says_what_it_was_for(api_version, variant):
    ids = known_customer(Ids(pack="large"))
    event = stripe_event(
        "checkout.session.async_payment_failed", ids, api_version=api_version, variant=variant
    )
    process_ok(event)
    process_ok(redelivered(event))

    assert ledger(ids.customer) == []
    (notice,) = emails(f"checkout-payment-failed:{ids.checkout_session}")
    assert (notice.template, notice.recipients) == ("payment_failed", [ids.email])
    purchase = "the Pro plan" if variant == "" else "3,000 credits"
    assert notice.context["purchase"] == purchase
    assert notice.context["invoice_url"] is None


def expired_count(mode: str) -> float:
    return REGISTRY.get_sample_value("billing_checkout_sessions_expired_total", {"mode": mode}) or 0


@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_an_expired_session_is_kept_and_counted_once_and_sends_nothing_by_default(api_version):
    ids = known_customer(Ids())
    before = expired_count("subscription")
    event = stripe_event("checkout.session.expired", ids, api_version=api_version)
    process_ok(event)
    process_ok(redelivered(event))

    with new_session() as session:
        assert expired_checkouts(session, account_id=account(ids.customer).id) == 1
    assert expired_count("subscription") == before + 1
    assert ledger(ids.customer) == []
    assert emails(f"checkout-recovery:{ids.checkout_session}") == []


@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_a_recovery_email_needs_the_setting_and_the_consent(api_version):
    recovery_on = with_settings(checkout_recovery_emails=True)
    consented = known_customer(Ids())
    event = stripe_event("checkout.session.expired", consented, api_version=api_version)
    process_ok(event, recovery_on)
    process_ok(redelivered(event), recovery_on)
    (notice,) = emails(f"checkout-recovery:{consented.checkout_session}")
    assert notice.template == "checkout_recovery"
    assert notice.context["purchase"] == "the Pro plan"
    assert notice.context["resume_url"].startswith("https://buy.stripe.com/r/")

    silent = known_customer(Ids())
    event = stripe_event("checkout.session.expired", silent, api_version=api_version)
    event["data"]["object"]["consent"] = None
    process_ok(event, recovery_on)
    assert emails(f"checkout-recovery:{silent.checkout_session}") == []


def test_the_admin_view_counts_expired_checkouts_and_shows_a_deletion(client, admin_headers):
    ids = known_customer(Ids())
    process_ok(stripe_event("checkout.session.expired", ids))
    process_ok(stripe_event("customer.deleted", ids))

    answer = client.get(f"/api/admin/customers/{ids.customer}", headers=admin_headers)
    assert answer.status_code == 200
    body = answer.json()
    assert body["expired_checkouts"] == 1
    assert body["deleted_at"] is not None
    assert body["user_id"] is None
