"""`POST /api/billing/subscription/change` and `/cancel` against the test's Stripe fake
(localstripe ignores `items[].price` and refuses `proration_behavior`): Stripe makes the
change, and its answer is stored through the events' own `billing` functions with cause `api`."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from billing import plan_changes
from billing.subscriptions import apply_stripe_subscription
from core.plans import get_catalogue
from db.session import new_session, transaction
from db.subscriptions import Cause, find_subscription
from tests.billing_api.conftest import auth, subscriber
from tests.support.stripe_events import (
    CREDITS,
    PRICES,
    Ids,
    account,
    balance,
    billing_context,
    emails,
    history,
    ledger,
    plan_changed,
    process_ok,
    prorated,
    proration_invoice,
    stripe_event,
    subscription,
    using_stripe,
)


def test_an_upgrade_is_prorated_stored_and_granted_once(api, fake):
    sub = subscriber(fake)
    process_ok(stripe_event("invoice.paid", sub.ids))
    # Stripe charges the proration at once and answers with its invoice, paid (expanded).
    paid_by = sub.ids.next_invoice()
    proration = proration_invoice(paid_by, old_price=PRICES["pro"], new_price=PRICES["team"])
    fake.subscriptions[sub.ids.subscription]["latest_invoice"] = proration["data"]["object"]

    answer = api.post(
        "/api/billing/subscription/change", json={"plan": "team"}, headers=sub.headers
    )

    assert answer.status_code == 200, answer.text
    assert answer.json()["plan"] == "team"
    assert answer.json()["price_id"] == PRICES["team"]
    [form] = fake.forms("POST", f"/v1/subscriptions/{sub.ids.subscription}")
    assert form["items[0][id]"] == sub.ids.subscription_item
    assert form["items[0][price]"] == PRICES["team"]
    assert form["proration_behavior"] == "always_invoice"
    assert form["payment_behavior"] == "error_if_incomplete"
    assert form["expand[0]"] == "latest_invoice"
    assert subscription(sub.ids.subscription).plan == "team"
    assert account(sub.ids.customer).plan == "team"
    assert history(sub.ids.subscription)[-1].cause == "api"
    upgrade = prorated(CREDITS["team"] - CREDITS["pro"])  # the time left at the change
    assert balance(sub.ids.customer) == CREDITS["pro"] + upgrade
    kind, source, amount = ledger(sub.ids.customer)[-1]
    assert (kind, amount) == ("upgrade_credits", upgrade)
    assert source.startswith(f"{sub.ids.subscription}:{PRICES['team']}:1767225600:")  # + its time
    (notice,) = emails(f"plan-changed:{sub.ids.subscription}")
    assert notice.context["credits_granted"] == upgrade

    # Stripe's own webhooks of the same change arrive afterwards: nothing is granted twice.
    updated = plan_changed(sub.ids, old_price=PRICES["pro"], new_price=PRICES["team"])
    process_ok(updated)
    process_ok(proration)
    assert balance(sub.ids.customer) == CREDITS["pro"] + upgrade
    assert len(emails(f"plan-changed:{sub.ids.subscription}")) == 1
    (receipt,) = emails(f"receipt:{paid_by.invoice}")
    assert receipt.context["credits_granted"] == upgrade


def test_an_upgrade_whose_answer_shows_no_paid_invoice_waits_for_the_invoice_event(api, fake):
    sub = subscriber(fake)
    process_ok(stripe_event("invoice.paid", sub.ids))  # `latest_invoice`: that invoice's id

    answer = api.post(
        "/api/billing/subscription/change", json={"plan": "team"}, headers=sub.headers
    )

    assert answer.status_code == 200, answer.text
    assert account(sub.ids.customer).plan == "team"
    assert balance(sub.ids.customer) == CREDITS["pro"]  # the period's own invoice paid no upgrade
    paid_by = sub.ids.next_invoice()
    process_ok(proration_invoice(paid_by, old_price=PRICES["pro"], new_price=PRICES["team"]))
    assert balance(sub.ids.customer) == CREDITS["pro"] + prorated(CREDITS["team"] - CREDITS["pro"])


def test_a_declined_upgrade_is_402_and_changes_nothing(api, fake):
    sub = subscriber(fake)
    fake.fail_path[f"/v1/subscriptions/{sub.ids.subscription}"] = [
        (
            402,
            {
                "error": {
                    "type": "card_error",
                    "message": "Your card has insufficient funds.",
                    "code": "card_declined",
                    "decline_code": "insufficient_funds",
                }
            },
        )
    ]

    answer = api.post(
        "/api/billing/subscription/change", json={"plan": "team"}, headers=sub.headers
    )

    assert answer.status_code == 402
    assert answer.json() == {"detail": "Your card has insufficient funds."}
    assert subscription(sub.ids.subscription).plan == "pro"
    assert [c.cause for c in history(sub.ids.subscription)] == ["event"]


@pytest.mark.parametrize(
    ("plan", "status", "reason"),
    [
        ("pro", 409, "already on the pro plan"),
        ("gold", 400, "Unknown plan 'gold'"),
        ("free", 400, "cancel"),
    ],
)
def test_a_change_that_cannot_be_made_is_refused_before_stripe(api, fake, plan, status, reason):
    sub = subscriber(fake)

    answer = api.post("/api/billing/subscription/change", json={"plan": plan}, headers=sub.headers)

    assert answer.status_code == status
    assert reason in answer.json()["detail"]
    assert fake.requests == []


@pytest.mark.parametrize(
    "path", ["/api/billing/subscription/change", "/api/billing/subscription/cancel"]
)
def test_without_a_subscription_there_is_nothing_to_change(api, fake, path):
    answer = api.post(
        path, json={"plan": "team"} if "change" in path else {}, headers=auth(Ids().user_id)
    )

    assert answer.status_code == 404
    assert "no active subscription" in answer.json()["detail"]


def test_an_ended_subscription_cannot_be_changed(api, fake):
    sub = subscriber(fake)
    process_ok(stripe_event("customer.subscription.deleted", sub.ids))

    answer = api.post(
        "/api/billing/subscription/change", json={"plan": "team"}, headers=sub.headers
    )

    assert answer.status_code == 404


def test_cancel_at_period_end_keeps_the_plan_until_then(api, fake):
    sub = subscriber(fake)

    answer = api.post(
        "/api/billing/subscription/cancel", json={"at_period_end": True}, headers=sub.headers
    )

    assert answer.status_code == 200
    assert answer.json()["cancel_at_period_end"] is True
    assert answer.json()["status"] == "active"
    [form] = fake.forms("POST", f"/v1/subscriptions/{sub.ids.subscription}")
    assert form == {"cancel_at_period_end": "true"}
    assert account(sub.ids.customer).plan == "pro"
    assert history(sub.ids.subscription)[-1].changes == {"cancel_at_period_end": [False, True]}


def test_cancel_now_ends_the_plan_and_emails_once(api, fake):
    sub = subscriber(fake)

    answer = api.post(
        "/api/billing/subscription/cancel", json={"at_period_end": False}, headers=sub.headers
    )

    assert answer.status_code == 200
    assert answer.json()["status"] == "canceled"
    assert ("DELETE", f"/v1/subscriptions/{sub.ids.subscription}") in [
        (m, p) for m, p, _ in fake.requests
    ]
    assert account(sub.ids.customer).plan == "free"
    process_ok(stripe_event("customer.subscription.deleted", sub.ids))
    assert len(emails(f"subscription-canceled:{sub.ids.subscription}")) == 1


def test_info_reflects_what_stripe_answered(api, fake):
    sub = subscriber(fake)
    process_ok(stripe_event("invoice.paid", sub.ids))
    api.post("/api/billing/subscription/cancel", json={"at_period_end": True}, headers=sub.headers)

    info = api.get("/api/billing/info", headers=sub.headers).json()

    with transaction() as db:
        period_end = db.scalar(
            text("SELECT current_period_end FROM subscriptions WHERE stripe_subscription_id = :s"),
            {"s": sub.ids.subscription},
        )
    assert info["plan"] == "pro"
    assert info["status"] == "active"
    assert info["cancel_at_period_end"] is True
    assert info["credits_balance"] == CREDITS["pro"]
    assert info["current_period_end"].startswith(period_end.strftime("%Y-%m-%dT%H:%M:%S"))


def test_a_retried_change_with_its_key_gets_the_first_answer(api, fake):
    sub = subscriber(fake)
    headers = {**sub.headers, "Idempotency-Key": "change-1"}

    first = api.post("/api/billing/subscription/change", json={"plan": "team"}, headers=headers)
    again = api.post("/api/billing/subscription/change", json={"plan": "team"}, headers=headers)
    other = api.post("/api/billing/subscription/change", json={"plan": "starter"}, headers=headers)

    assert (first.status_code, again.status_code, other.status_code) == (200, 200, 409)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(fake.forms("POST", f"/v1/subscriptions/{sub.ids.subscription}")) == 1


def test_a_retried_cancel_with_its_key_gets_the_first_answer_after_the_end(api, fake):
    sub = subscriber(fake)
    headers = {**sub.headers, "Idempotency-Key": "cancel-1"}
    body = {"at_period_end": False}

    first = api.post("/api/billing/subscription/cancel", json=body, headers=headers)
    again = api.post("/api/billing/subscription/cancel", json=body, headers=headers)

    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == first.json()
    assert first.json()["status"] == "canceled"


def test_two_concurrent_changes_end_with_stripe_s_last_word(api, fake):
    sub = subscriber(fake)
    answers: dict[str, int] = {}

    def change(plan: str) -> None:
        answer = api.post(
            "/api/billing/subscription/change", json={"plan": plan}, headers=sub.headers
        )
        answers[plan] = answer.status_code

    threads = [threading.Thread(target=change, args=(plan,)) for plan in ("team", "starter")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert set(answers.values()) <= {200, 409}
    stripe_price = fake.subscriptions[sub.ids.subscription]["items"]["data"][0]["price"]["id"]
    assert subscription(sub.ids.subscription).price_id == stripe_price
    last_change = history(sub.ids.subscription)[-1]
    assert last_change.price_id == stripe_price


def test_stripe_s_answer_is_compared_with_the_committed_row_not_a_stale_copy():
    sub = subscriber()
    still_active = stripe_event("customer.subscription.created", sub.ids)["data"]["object"]
    with new_session() as db:
        row = find_subscription(db, subscription_id=sub.ids.subscription)
        assert row.status == "active"  # the copy the request read first
        process_ok(stripe_event("customer.subscription.deleted", sub.ids))  # a worker, meanwhile

        result = apply_stripe_subscription(
            db,
            billing_context(),
            account=db.merge(account(sub.ids.customer)),
            subscription=still_active,
            as_of=None,
            cause=Cause.API,
        )
        db.commit()

    assert result.applied is False  # an ended subscription is never brought back
    assert subscription(sub.ids.subscription).status == "canceled"


def test_a_change_that_waited_behind_a_cancellation_reaches_no_stripe_call(fake):
    sub = subscriber(fake)
    with new_session() as db:
        row = find_subscription(db, subscription_id=sub.ids.subscription)  # read: live
        payer = db.merge(account(sub.ids.customer))
        process_ok(stripe_event("customer.subscription.deleted", sub.ids))  # meanwhile

        with pytest.raises(plan_changes.NoLongerLive), using_stripe(fake.client()) as ctx:
            plan_changes.change_plan(
                db,
                ctx,
                account=payer,
                subscription=row,
                plan=get_catalogue().plan("team"),
                idempotency_key=None,
            )

    assert fake.requests == []
