"""`customer.created` / `customer.updated`: the email stays current, `metadata.user_id` links."""

from __future__ import annotations

import pytest

from tests.support.stripe_events import API_VERSIONS, Ids, account, process_ok, stripe_event


@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_a_new_customer_is_adopted_with_its_email_and_user(api_version):
    ids = Ids()
    process_ok(stripe_event("customer.created", ids, api_version=api_version))

    adopted = account(ids.customer)
    assert (adopted.email, adopted.user_id, adopted.plan) == (ids.email, ids.user_id, "free")


def test_an_update_keeps_the_email_current():
    ids = Ids()
    process_ok(stripe_event("customer.created", ids))
    new_email = "jane.new@example.com"
    update = stripe_event("customer.updated", ids)
    update["data"]["object"]["email"] = new_email
    process_ok(update)

    assert account(ids.customer).email == new_email
