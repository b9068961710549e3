"""Early fraud warnings, Visa CE 3.0 evidence, Smart Disputes and the networks' monitoring
ratios through the real stack: signed webhooks to a `billing api` process, a `billing
worker` process applying them in PostgreSQL, Stripe calls to a Stripe fake over HTTP, and
the admins' emails arriving at the test SMTP server.

The platform here is its own API and worker, keyed for the fake, with EFW_ACTION=refund and
small monitoring thresholds, on a broker prefix of its own (no other test meets them)."""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from core.settings import load_settings
from tasks.celery_app import publisher_app
from tests.billing_api.conftest import auth
from tests.conftest import ADMIN_TOKEN, WEBHOOK_SECRET
from tests.support.events import encode, signed, wait_for_status
from tests.support.processes import ApiProcess, WorkerProcess
from tests.support.smtp import RecordingHandler
from tests.support.stripe_events import (
    CREDITS,
    Ids,
    balance,
    dispute_event,
    emails,
    ledger,
    stripe_event,
)
from tests.support.stripe_fake import TEST_KEY, StripeFake

ADMIN = "ops@example.com"
DAY = 86_400
DEVICE = "dfp_" + "7f3a9c2e5b1d4f60a8c7e2b9"  # Stripe wants 20 characters or more
PREFIX = f"{os.environ['BROKER_KEY_PREFIX']}efw:"
ENV = {
    "STRIPE_SECRET_KEY_TEST": TEST_KEY,
    "BROKER_KEY_PREFIX": PREFIX,
    "EFW_ACTION": "refund",
    "EFW_AUTO_REFUND_MAX_AMOUNT": "5000",
    "TRUSTED_PROXY_HOPS": "1",
    "REFUND_POLICY_URL": "https://example.com/refunds",
    "TERMS_URL": "https://example.com/terms",
    "DISPUTE_RATIO_VISA_THRESHOLD": "0.2",
    "DISPUTE_COUNT_VISA_THRESHOLD": "2",
}


@pytest.fixture(scope="module")
def fake() -> Iterator[StripeFake]:
    with StripeFake().running() as running:
        yield running


@pytest.fixture(scope="module")
def platform(fake: StripeFake, smtp_server: RecordingHandler) -> Iterator[ApiProcess]:
    env = {**ENV, "STRIPE_API_BASE": fake.url}
    api, worker = ApiProcess(env), WorkerProcess(env)
    api.start()
    worker.start()
    yield api
    worker.stop()
    api.stop()


@pytest.fixture
def admin(platform: ApiProcess) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=platform.url, headers=headers, timeout=10) as client:
        yield client


def deliver(platform: ApiProcess, event: dict[str, Any]) -> None:
    """Sign and POST the event; wait until the worker has processed it."""
    body = encode(event)
    answer = httpx.post(
        f"{platform.url}/api/stripe/webhook", content=body, headers=signed(body, WEBHOOK_SECRET)
    )
    assert answer.status_code == 200, answer.text
    row = wait_for_status(event["id"])
    assert row.status == "processed", (event["type"], row.status, row.last_error)


def charge_event(ids: Ids, *, created: int, amount: int = 900, brand: str = "visa") -> dict:
    event = stripe_event("charge.succeeded", ids, created=created)
    charge = event["data"]["object"]
    charge.update(created=created, amount=amount)
    charge["payment_method_details"]["card"].update(brand=brand, network=brand)
    return event


def warning_event(ids: Ids, kind: str = "created", *, created: int | None = None) -> dict:
    event = stripe_event(f"radar.early_fraud_warning.{kind}", ids, created=created)
    if created is not None:
        event["data"]["object"]["created"] = created
    return event


def fraud_dispute(ids: Ids, **overrides: Any) -> dict:
    """`charge.dispute.created` of a Visa 10.4 (card-absent fraud) dispute, newest shape."""
    event = dispute_event("charge.dispute.created", ids)
    dispute = event["data"]["object"]
    dispute.update(overrides)
    return event


def mails_naming(smtp: RecordingHandler, text: str, *, until: float = 20.0) -> list[str]:
    """Subjects of the admin mails whose text names `text`, once one came (and a moment more,
    so a duplicate would show)."""

    def found() -> list[str]:
        return [
            str(r.message["Subject"])
            for r in smtp.for_recipient(ADMIN)
            if text in r.message.get_body(("plain",)).get_content()
        ]

    deadline = time.monotonic() + until
    while not found():
        if time.monotonic() > deadline:
            raise AssertionError(f"no admin mail names {text}")
        time.sleep(0.1)
    time.sleep(1.0)
    return found()


# --- A warning held, refunded by policy, then disputed: credits taken back once ----------


def test_a_warning_is_held_refunded_by_policy_then_disputed_taking_credits_once(
    platform, fake, smtp_server
):
    ids = Ids()
    deliver(platform, stripe_event("customer.created", ids))
    # An API version whose invoice names its payment.
    deliver(platform, stripe_event("invoice.paid", ids, api_version="2022-11-15"))
    fake.charges[ids.charge] = {
        "id": ids.charge,
        "object": "charge",
        "amount": 2900,
        "amount_refunded": 0,
        "customer": ids.customer,
        "payment_intent": ids.payment_intent,
    }
    assert balance(ids.customer) == CREDITS["pro"]

    deliver(platform, warning_event(ids))

    assert ledger(ids.customer)[-1] == ("fraud_warning_hold", ids.warning, -CREDITS["pro"])
    assert fake.idempotency_keys("/v1/refunds") == [f"efw-refund:{ids.warning}"]
    assert "Early fraud warning" in mails_naming(smtp_server, ids.warning)[0]

    refunded = stripe_event("charge.refunded", ids, api_version="2022-11-15")
    refunded["data"]["object"].update(amount=2900, amount_refunded=2900, refunded=True)
    deliver(platform, refunded)
    deliver(platform, warning_event(ids, "updated", created=int(time.time()) + 1))
    deliver(platform, fraud_dispute(ids))
    deliver(platform, warning_event(ids))  # a redelivery changes nothing

    kinds = [(kind, amount) for kind, _, amount in ledger(ids.customer)]
    assert kinds == [
        ("plan_credits", CREDITS["pro"]),
        ("fraud_warning_hold", -CREDITS["pro"]),
        ("refund", -CREDITS["pro"]),
        ("fraud_warning_release", CREDITS["pro"]),
    ]
    assert balance(ids.customer) == 0
    assert len(fake.refunds) == 1 and len(emails(f"fraud-warning:{ids.warning}")) == 1


# --- Visa CE 3.0 ------------------------------------------------------------------------------


def buy_pack(platform: ApiProcess, fake: StripeFake, ids: Ids, *, created: int) -> str:
    """The user buys a credit pack through the platform's own Checkout, from a known IP and
    device, paid `created` (Unix time) with the test's card; the Stripe customer."""
    answer = httpx.post(
        f"{platform.url}/api/billing/checkout",
        json={"pack": "small"},
        headers={
            **auth(ids.user_id, ids.email),
            "Idempotency-Key": uuid.uuid4().hex,
            "X-Forwarded-For": "198.51.100.23, 203.0.113.7",  # the proxy appended the last
            "X-Device-Fingerprint": DEVICE,
        },
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    session_id = answer.json()["session_id"]
    paid = replace(ids, customer=fake.checkout_sessions[session_id]["customer"])
    completed = stripe_event("checkout.session.completed", paid, variant="payment")
    completed["data"]["object"]["id"] = session_id
    deliver(platform, charge_event(paid, created=created))  # either order works
    deliver(platform, completed)
    return paid.customer


def new_payment(ids: Ids) -> Ids:
    return replace(
        ids,
        charge=f"ch_{uuid.uuid4().hex[:16]}",
        payment_intent=f"pi_{uuid.uuid4().hex[:16]}",
        checkout_session=f"cs_{uuid.uuid4().hex[:16]}",
    )


def test_a_ce3_eligible_fraud_dispute_lists_the_two_prior_payments_and_submits_them(
    platform, fake, admin
):
    user = Ids()
    now = int(time.time())
    first, second, disputed = new_payment(user), new_payment(user), new_payment(user)
    buy_pack(platform, fake, first, created=now - 300 * DAY)
    buy_pack(platform, fake, second, created=now - 150 * DAY)
    dispute = replace(disputed, customer=buy_pack(platform, fake, disputed, created=now - 2 * DAY))
    event = fraud_dispute(dispute)
    fake.disputes[dispute.dispute] = event["data"]["object"]
    deliver(platform, event)

    draft = admin.get(f"/api/admin/disputes/{dispute.dispute}/evidence-draft")

    assert draft.status_code == 200, draft.text
    ce3 = draft.json()["visa_ce3"]
    assert ce3["eligible"] is True, ce3
    assert [p["charge"] for p in ce3["prior_transactions"]] == [first.charge, second.charge]
    for prior in ce3["prior_transactions"]:
        assert set(prior["matched"]) == {
            "customer_account_id",
            "customer_purchase_ip",
            "customer_device_fingerprint",
        }
    evidence = draft.json()["evidence"]
    assert evidence["customer_purchase_ip"] == "203.0.113.7"
    assert evidence["refund_policy_disclosure"] == "https://example.com/refunds"
    assert draft.json()["submission"]["smart_disputes"] is False

    submitted = admin.post(
        f"/api/admin/disputes/{dispute.dispute}/evidence", json={"use_draft": True}
    )

    assert submitted.status_code == 200, submitted.text
    sent = fake.forms("POST", f"/v1/disputes/{dispute.dispute}")[-1]
    ce3_field = "evidence[enhanced_evidence][visa_compelling_evidence_3]"
    assert sent[f"{ce3_field}[prior_undisputed_transactions][0][charge]"] == first.charge
    assert sent[f"{ce3_field}[prior_undisputed_transactions][1][charge]"] == second.charge
    assert sent[f"{ce3_field}[disputed_transaction][customer_purchase_ip]"] == "203.0.113.7"
    assert sent["submit"] == "true"


def test_an_ineligible_fraud_dispute_says_why(platform, admin):
    ids = Ids()
    deliver(platform, stripe_event("customer.created", ids))
    deliver(platform, charge_event(ids, created=int(time.time()) - DAY))
    deliver(platform, fraud_dispute(ids))

    ce3 = admin.get(f"/api/admin/disputes/{ids.dispute}/evidence-draft").json()["visa_ce3"]

    assert ce3["eligible"] is False
    assert ce3["reason"] == "no undisputed payment with the same card 120 to 365 days before"
    assert ce3["prior_transactions"] == []


def test_smart_disputes_in_charge_refuses_the_draft_with_409(platform, fake, admin):
    ids = Ids()
    deliver(platform, stripe_event("customer.created", ids))
    event = fraud_dispute(ids, intended_submission_method="smart_disputes")
    fake.disputes[ids.dispute] = event["data"]["object"]
    deliver(platform, event)

    draft = admin.get(f"/api/admin/disputes/{ids.dispute}/evidence-draft").json()
    refused = admin.post(f"/api/admin/disputes/{ids.dispute}/evidence", json={"use_draft": True})

    assert draft["submission"] == {
        "method": "not_submitted",
        "intended": "smart_disputes",
        "smart_disputes": True,
    }
    assert refused.status_code == 409
    assert "Smart Disputes" in refused.json()["detail"]
    assert fake.forms("POST", f"/v1/disputes/{ids.dispute}") == []


# --- Monitoring ratios -------------------------------------------------------------------------


def test_a_months_visa_ratio_crossing_warning_emails_once(platform, admin, smtp_server):
    year = random.randint(3000, 9000)  # a month of this test's own
    month = f"{year}-04"
    mid = int(datetime(year, 4, 15, tzinfo=UTC).timestamp())
    ids = Ids()
    deliver(platform, stripe_event("customer.created", ids))
    payments = [new_payment(ids) for _ in range(12)]
    for number, payment in enumerate(payments):
        deliver(platform, charge_event(payment, created=mid + number))
    deliver(platform, warning_event(payments[0], created=mid + 100))
    deliver(platform, fraud_dispute(payments[1], created=mid + 200))

    rates = admin.get("/api/admin/disputes/rates", params={"month": month}).json()

    visa = next(n for n in rates["networks"] if n["network"] == "visa")
    assert (visa["settled"], visa["fraud_reports"], visa["disputes"]) == (12, 1, 1)
    assert visa["status"] == "warning"  # 2/12 = 16.7%: past 70% of 20%, under 20%
    assert [n["network"] for n in rates["networks"]] == ["visa", "mastercard"]
    assert admin.get("/api/admin/disputes/rates", params={"month": "2026-13"}).status_code == 400

    publisher = publisher_app(load_settings(broker_key_prefix=PREFIX))
    for _ in range(2):  # two daily runs: one email
        publisher.send_task("billing.check_dispute_ratios", args=[mid + 300])

    subjects = mails_naming(smtp_server, f"Month:          {month}")
    assert len(subjects) == 1 and "Visa dispute ratio nearing" in subjects[0]
    metrics = httpx.get(f"{platform.url}/metrics").text
    assert 'billing_dispute_ratio{network="visa"}' in metrics
