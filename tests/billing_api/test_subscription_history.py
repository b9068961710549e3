"""The subscription history already stored, read back: the user's own and an admin's view."""

from __future__ import annotations

from tests.billing_api.conftest import auth
from tests.support.stripe_events import (
    PRICES,
    Ids,
    known_customer,
    plan_changed,
    process_ok,
    stripe_event,
)


def subscribed_then_upgraded() -> tuple[Ids, str]:
    ids = known_customer(Ids(price=PRICES["starter"]))
    process_ok(stripe_event("customer.subscription.created", ids))
    upgrade = plan_changed(
        ids, old_price=PRICES["starter"], new_price=PRICES["pro"], created=2_000_000_000
    )
    process_ok(upgrade)
    return ids, upgrade["id"]


def test_the_user_reads_their_own_subscription_history_newest_first(client):
    ids, _ = subscribed_then_upgraded()

    answer = client.get("/api/billing/subscription/history", headers=auth(ids.user_id))

    assert answer.status_code == 200
    items = answer.json()["items"]
    assert [item["plan"] for item in items] == ["pro", "starter"]
    assert {item["subscription_id"] for item in items} == {ids.subscription}
    assert items[0]["changes"]["plan"] == ["starter", "pro"]
    assert items[1]["changes"]["status"][0] is None  # first stored
    assert "cause" not in items[0]  # the admin's view only
    assert answer.json()["has_more"] is False


def test_the_history_pages_with_a_cursor(client):
    ids, _ = subscribed_then_upgraded()
    headers = auth(ids.user_id)

    first = client.get("/api/billing/subscription/history?limit=1", headers=headers).json()
    assert first["has_more"] is True
    rest = client.get(
        f"/api/billing/subscription/history?limit=1&cursor={first['next_cursor']}",
        headers=headers,
    ).json()
    assert [first["items"][0]["plan"], rest["items"][0]["plan"]] == ["pro", "starter"]
    assert rest["has_more"] is False


def test_a_user_without_an_account_has_no_history_and_a_stranger_sees_none_of_it(client):
    subscribed_then_upgraded()
    answer = client.get("/api/billing/subscription/history", headers=auth(Ids().user_id))
    assert answer.json() == {"items": [], "has_more": False, "next_cursor": None}
    assert client.get("/api/billing/subscription/history").status_code == 401


def test_an_admin_reads_a_customers_history_with_its_causes(client, admin_headers):
    ids, upgrade_event = subscribed_then_upgraded()

    answer = client.get(
        f"/api/admin/customers/{ids.customer}/subscription-history", headers=admin_headers
    )

    assert answer.status_code == 200
    body = answer.json()
    assert body["stripe_customer_id"] == ids.customer
    newest = body["items"][0]
    assert (newest["plan"], newest["cause"], newest["stripe_event_id"]) == (
        "pro",
        "event",
        upgrade_event,
    )
    assert newest["recorded_at"]
    missing = client.get(
        "/api/admin/customers/cus_unknown/subscription-history", headers=admin_headers
    )
    assert missing.status_code == 404
    assert (
        client.get(f"/api/admin/customers/{ids.customer}/subscription-history").status_code == 401
    )
