"""`GET /api/billing/plans` and `GET /api/admin/customers/{cus_id}`."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from db.session import transaction
from tests.support.stripe_events import (
    CREDITS,
    PRICES,
    Ids,
    known_customer,
    process_ok,
    stripe_event,
)


def test_the_catalogue_lists_every_plan_with_its_price_and_the_packs(client):
    answer = client.get("/api/billing/plans")

    assert answer.status_code == 200
    plans = {p["id"]: p for p in answer.json()["plans"]}
    assert set(plans) == {"free", "starter", "pro", "team"}
    assert plans["free"]["price_id"] is None
    assert plans["pro"] == {
        "id": "pro",
        "name": "Pro",
        "monthly_credits": CREDITS["pro"],
        "price_id": PRICES["pro"],
    }
    assert {p["id"] for p in answer.json()["packs"]} == {"small", "large"}


def test_the_admin_customer_view_shows_plan_subscription_and_the_whole_ledger(
    client, admin_headers
):
    ids = known_customer(Ids())
    process_ok(stripe_event("customer.subscription.created", ids))
    process_ok(stripe_event("invoice.paid", ids, api_version="2022-11-15"))
    refund = stripe_event("charge.refunded", ids, api_version="2022-11-15")
    refund["data"]["object"].update(amount=2900, amount_refunded=1450)
    process_ok(refund)

    answer = client.get(f"/api/admin/customers/{ids.customer}", headers=admin_headers)

    assert answer.status_code == 200
    body = answer.json()
    assert body["stripe_customer_id"] == ids.customer
    assert (body["user_id"], body["email"], body["plan"]) == (ids.user_id, ids.email, "pro")
    assert body["subscription"]["id"] == ids.subscription
    assert body["subscription"]["status"] == "active"
    assert body["subscription"]["price_id"] == PRICES["pro"]
    assert [(e["kind"], e["source_id"], e["amount"]) for e in body["ledger"]] == [
        ("plan_credits", ids.invoice, CREDITS["pro"]),
        ("refund", f"{ids.charge}:1450", -CREDITS["pro"] // 2),
    ]
    assert body["credits_balance"] == CREDITS["pro"] // 2
    assert body["disputes"] == []


def test_an_unknown_customer_is_404_and_the_view_needs_the_token(client, admin_headers):
    assert client.get("/api/admin/customers/cus_nobody", headers=admin_headers).status_code == 404
    assert client.get("/api/admin/customers/cus_nobody").status_code == 401


def test_the_ledger_refuses_to_be_edited_in_place():
    ids = Ids()
    process_ok(stripe_event("invoice.paid", ids))
    with pytest.raises(DBAPIError, match="append-only"), transaction() as session:
        session.execute(text("UPDATE credit_ledger SET amount = amount * 2"))
