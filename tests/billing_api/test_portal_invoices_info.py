"""`POST /api/billing/portal`, `GET /api/billing/invoices` and `GET /api/billing/info`, and
the OpenAPI document the host application's developers read."""

from __future__ import annotations

from tests.billing_api.conftest import auth, subscriber
from tests.support.stripe_events import CREDITS, Ids, process_ok, stripe_event


def test_the_portal_opens_for_the_user_s_customer(api, fake):
    sub = subscriber(fake)

    answer = api.post("/api/billing/portal", headers=sub.headers)

    assert answer.status_code == 200, answer.text
    assert answer.json()["url"].startswith("https://billing.stripe.com/p/session/")
    [form] = fake.forms("POST", "/v1/billing_portal/sessions")
    assert form == {"customer": sub.ids.customer, "return_url": "https://app.example.com/billing"}


def test_no_portal_without_a_customer(api, fake):
    answer = api.post("/api/billing/portal", headers=auth(Ids().user_id))

    assert answer.status_code == 404
    assert "no billing account" in answer.json()["detail"]


def test_no_portal_for_a_customer_stripe_deleted(api, fake):
    sub = subscriber(fake)
    fake.add_customer(sub.ids.customer, user_id=sub.ids.user_id, deleted=True)

    answer = api.post("/api/billing/portal", headers=sub.headers)

    assert answer.status_code == 404
    assert fake.forms("POST", "/v1/billing_portal/sessions") == []


def test_invoices_list_amounts_status_and_links_newest_first(client):
    sub = subscriber()
    first = sub.ids
    second = first.next_invoice()
    process_ok(stripe_event("invoice.paid", first))
    process_ok(stripe_event("invoice.paid", second))

    page = client.get("/api/billing/invoices", params={"limit": 1}, headers=sub.headers).json()
    rest = client.get(
        "/api/billing/invoices",
        params={"limit": 1, "cursor": page["next_cursor"]},
        headers=sub.headers,
    ).json()

    assert [i["id"] for i in page["items"]] == [second.invoice]
    assert page["has_more"] is True
    assert [i["id"] for i in rest["items"]] == [first.invoice]
    assert rest["has_more"] is False
    invoice = rest["items"][0]
    assert invoice["status"] == "paid"
    assert invoice["amount_paid"] == invoice["amount_due"] > 0
    assert invoice["currency"] == "usd"
    assert invoice["plan"] == "pro"
    assert invoice["hosted_invoice_url"].startswith("https://")
    assert invoice["invoice_pdf"].startswith("https://")


def test_a_new_user_has_no_invoices_and_the_free_plan(client):
    headers = auth(Ids().user_id)

    assert client.get("/api/billing/invoices", headers=headers).json() == {
        "items": [],
        "has_more": False,
        "next_cursor": None,
    }
    assert client.get("/api/billing/info", headers=headers).json()["plan"] == "free"


def test_info_after_renewal_and_cancellation_events(client):
    sub = subscriber()
    process_ok(stripe_event("invoice.paid", sub.ids))
    process_ok(stripe_event("customer.subscription.deleted", sub.ids))

    info = client.get("/api/billing/info", headers=sub.headers).json()

    assert info["plan"] == "free"
    assert info["status"] == "canceled"
    assert info["credits_balance"] == CREDITS["pro"]


def test_every_user_route_is_documented_with_its_models_and_errors(client):
    spec = client.get("/openapi.json").json()
    user_routes = {
        ("get", "/api/billing/info"),
        ("post", "/api/billing/checkout"),
        ("post", "/api/billing/subscription/change"),
        ("post", "/api/billing/subscription/cancel"),
        ("post", "/api/billing/portal"),
        ("get", "/api/billing/invoices"),
        ("get", "/api/billing/credits"),
        ("post", "/api/billing/credits/consume"),
    }
    for method, path in user_routes:
        operation = spec["paths"][path][method]
        assert operation["description"], path
        ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert "$ref" in ok, path
        assert {"401", "503"} <= set(operation["responses"]), path
        assert operation["security"] == [{"HTTPBearer": []}], path
    consume = spec["paths"]["/api/billing/credits/consume"]["post"]
    assert {"402", "409"} <= set(consume["responses"])
    assert any(p["name"] == "Idempotency-Key" for p in consume["parameters"])
    assert "Idempotent-Replayed" in consume["responses"]["200"]["headers"]
