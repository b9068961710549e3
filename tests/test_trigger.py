"""`billing trigger`: every handled type, sent to a real `billing api`, handled by a real worker,
and read back through the admin API and a real SMTP server."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from click.testing import CliRunner, Result

from cli.main import main
from cli.sample_events import customer_id, email_of, updated_email_of
from tasks.events.registry import HANDLERS
from tests.conftest import WEBHOOK_SECRET
from tests.support.processes import ApiProcess
from tests.support.smtp import Received, RecordingHandler

WEBHOOK = "/api/stripe/webhook"
ADMIN_MAILBOX = "ops@example.com"
TERMINAL = ("processed", "failed", "ignored")


# --- Running the command and following what it sent ------------------------------------------


def trigger(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(main, ["trigger", *args], env=env)


def sent(result: Result) -> list[tuple[str, int, str]]:
    """(event id, HTTP status, type) of each line the command printed for an event."""
    lines = [line.split() for line in result.stdout.splitlines() if line.startswith("evt_")]
    return [(event_id, int(status), event_type) for event_id, status, event_type in lines]


def new_customer_of(result: Result) -> str:
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("customer ")]
    return line.split()[1]


@pytest.fixture
def admin(api_server: ApiProcess, admin_headers: dict[str, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_server.url, headers=admin_headers, timeout=10) as client:
        yield client


def wait_until_handled(admin: httpx.Client, event_id: str, timeout: float = 20.0) -> dict:
    """The stored event once it is processed, failed or ignored (polled: usually a few ms)."""
    deadline = time.monotonic() + timeout
    row: dict = {}
    while time.monotonic() < deadline:
        answer = admin.get(f"/api/admin/webhook-events/{event_id}")
        if answer.status_code == 200:
            row = answer.json()
            if row["status"] in TERMINAL:
                return row
        time.sleep(0.05)
    raise AssertionError(f"{event_id} was not handled in {timeout} s: {row}")


def trigger_and_wait(admin: httpx.Client, api_server: ApiProcess, *args: str) -> Result:
    """Run the command against the test API and wait until the worker handled every event."""
    result = trigger(*args, "--url", api_server.url + WEBHOOK)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    for event_id, status, event_type in sent(result):
        assert status == 200, (event_id, event_type)
        row = wait_until_handled(admin, event_id)
        assert row["status"] == "processed", (event_type, row)
    return result


def customer_view(admin: httpx.Client, customer: str) -> dict:
    answer = admin.get(f"/api/admin/customers/{customer}")
    assert answer.status_code == 200, answer.text
    return answer.json()


def wait_for_mail(
    smtp: RecordingHandler, address: str, matches: Callable[[Received], bool]
) -> Received:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for received in smtp.for_recipient(address):
            if matches(received):
                return received
        time.sleep(0.05)
    raise AssertionError(f"no matching message for {address}")


def subject_starts(prefix: str) -> Callable[[Received], bool]:
    return lambda received: str(received.message["Subject"]).startswith(prefix)


def mentions(text: str) -> Callable[[Received], bool]:
    return lambda received: text in received.message.get_body(("plain",)).get_content()


# --- Every type, handled by the real handlers -------------------------------------------------


@dataclass(frozen=True)
class Effect:
    """What a new customer's account shows after one trigger."""

    plan: str = "free"
    ledger: list[tuple[str, int]] = field(default_factory=list)  # (kind, amount)
    subscription: str | None = None  # its status
    dispute: str | None = None  # its status
    customer_mail: str | None = None  # the start of the subject
    admin_mail: bool = False  # about the dispute
    email: Callable[[str], str] = email_of
    user_linked: bool = True  # a deleted customer's user is unlinked


STARTER, PRO, PACK = 1000, 5000, 500  # the shipped catalogue: monthly credits, small pack
EFFECTS: dict[str, Effect] = {
    "customer.created": Effect(),
    "customer.updated": Effect(email=updated_email_of),
    "checkout.session.completed": Effect(
        plan="starter",
        ledger=[("plan_credits", STARTER)],
        subscription="active",
        customer_mail="Receipt: $19.00 for Starter",
    ),
    "checkout.session.async_payment_succeeded": Effect(ledger=[("pack_credits", PACK)]),
    "customer.subscription.created": Effect(plan="starter", subscription="active"),
    "customer.subscription.updated": Effect(
        plan="pro",
        ledger=[("upgrade_credits", PRO - STARTER)],
        subscription="active",
        customer_mail="You upgraded to Pro",
    ),
    "customer.subscription.deleted": Effect(
        subscription="canceled", customer_mail="Your Starter subscription has ended"
    ),
    "invoice.paid": Effect(
        plan="starter",
        ledger=[("plan_credits", STARTER)],
        subscription="active",
        customer_mail="Receipt: $19.00 for Starter",
    ),
    "invoice.payment_succeeded": Effect(
        plan="starter",
        ledger=[("plan_credits", STARTER)],
        subscription="active",
        customer_mail="Receipt: $19.00 for Starter",
    ),
    "invoice.payment_failed": Effect(
        plan="starter",
        subscription="past_due",
        customer_mail="Your payment of $19.00 did not go through",
    ),
    "charge.refunded": Effect(ledger=[("pack_credits", PACK), ("refund", -PACK)]),
    "customer.deleted": Effect(user_linked=False),
    "checkout.session.async_payment_failed": Effect(
        customer_mail="Your payment of $9.00 did not go through"
    ),
    "checkout.session.expired": Effect(),  # stored and counted; no email by default
    "customer.subscription.trial_will_end": Effect(
        plan="starter", subscription="trialing", customer_mail="Your Starter trial ends on"
    ),
    "customer.subscription.paused": Effect(
        subscription="paused", customer_mail="Your Starter subscription is paused"
    ),
    "customer.subscription.resumed": Effect(
        plan="starter",
        subscription="active",
        customer_mail="Your Starter subscription is active again",
    ),
    "invoice.finalized": Effect(plan="starter", subscription="active"),
    "invoice.payment_action_required": Effect(
        plan="starter", subscription="active", customer_mail="Confirm your payment of $19.00"
    ),
    "invoice.upcoming": Effect(plan="starter", subscription="active"),  # monthly: no notice
    "invoice_payment.paid": Effect(
        plan="starter", subscription="active", ledger=[("plan_credits", STARTER)]
    ),
    "credit_note.created": Effect(
        plan="starter",
        ledger=[("plan_credits", STARTER), ("credit_note", -STARTER)],
        subscription="active",
        customer_mail="Receipt: $19.00 for Starter",
    ),
    "credit_note.voided": Effect(
        plan="starter",
        ledger=[("plan_credits", STARTER), ("credit_note", -STARTER), ("credit_note", STARTER)],
        subscription="active",
        customer_mail="Receipt: $19.00 for Starter",
    ),
    "charge.dispute.created": Effect(
        ledger=[("pack_credits", PACK), ("dispute_hold", -PACK)],
        dispute="needs_response",
        admin_mail=True,
    ),
    "charge.dispute.updated": Effect(
        ledger=[("pack_credits", PACK), ("dispute_hold", -PACK)], dispute="under_review"
    ),
    "charge.dispute.closed": Effect(
        ledger=[("pack_credits", PACK), ("dispute_hold", -PACK), ("dispute_release", PACK)],
        dispute="won",
        admin_mail=True,
    ),
    "charge.dispute.funds_withdrawn": Effect(
        ledger=[("pack_credits", PACK), ("dispute_hold", -PACK)], dispute="needs_response"
    ),
    "charge.dispute.funds_reinstated": Effect(
        ledger=[("pack_credits", PACK), ("dispute_hold", -PACK), ("dispute_release", PACK)],
        dispute="won",
    ),
    "charge.succeeded": Effect(ledger=[("pack_credits", PACK)]),
    "radar.early_fraud_warning.created": Effect(
        ledger=[("pack_credits", PACK), ("fraud_warning_hold", -PACK)]
    ),
    "radar.early_fraud_warning.updated": Effect(
        ledger=[("pack_credits", PACK), ("fraud_warning_hold", -PACK)]
    ),
}


def test_every_type_has_its_expected_effect():
    assert set(EFFECTS) == set(HANDLERS)


@pytest.mark.parametrize("event_type", sorted(HANDLERS))
def test_each_type_is_processed_with_its_effect(api_server, worker, smtp_server, admin, event_type):
    result = trigger_and_wait(admin, api_server, event_type)

    customer = new_customer_of(result)
    assert [t for _, _, t in sent(result)][-1] == event_type
    assert result.stderr == ""  # the test settings configure every price
    expected = EFFECTS[event_type]
    view = customer_view(admin, customer)
    assert view["email"] == expected.email(customer)
    assert (view["user_id"] is not None) == expected.user_linked
    assert view["plan"] == expected.plan
    assert [(e["kind"], e["amount"]) for e in view["ledger"]] == expected.ledger
    assert view["credits_balance"] == sum(amount for _, amount in expected.ledger)
    assert (view["subscription"] or {}).get("status") == expected.subscription
    assert [d["status"] for d in view["disputes"]] == (
        [expected.dispute] if expected.dispute else []
    )
    if expected.customer_mail:
        wait_for_mail(smtp_server, view["email"], subject_starts(expected.customer_mail))
    if expected.admin_mail:
        wait_for_mail(smtp_server, ADMIN_MAILBOX, mentions(view["disputes"][0]["id"]))


# --- One customer's story ---------------------------------------------------------------------


def test_a_customers_story_checkout_renewal_and_dispute(api_server, worker, smtp_server, admin):
    customer = customer_id()  # one the platform has never met

    checkout = trigger_and_wait(
        admin, api_server, "checkout.session.completed", "--customer", customer
    )

    assert "customer " not in checkout.stdout  # an existing customer: nothing new to announce
    assert [t for _, _, t in sent(checkout)] == [
        "customer.subscription.created",
        "invoice.paid",
        "checkout.session.completed",
    ]
    view = customer_view(admin, customer)
    assert view["plan"] == "starter"
    assert view["credits_balance"] == STARTER
    assert view["subscription"]["status"] == "active"
    assert view["subscription"]["price_id"] == "price_starter_test"
    subscription = view["subscription"]["id"]

    renewal = trigger_and_wait(admin, api_server, "invoice.paid", "--customer", customer)

    assert [t for _, _, t in sent(renewal)] == ["invoice.paid"]
    view = customer_view(admin, customer)
    assert view["plan"] == "starter"
    assert view["credits_balance"] == 2 * STARTER
    assert [e["kind"] for e in view["ledger"]] == ["plan_credits", "plan_credits"]
    assert len({e["source_id"] for e in view["ledger"]}) == 2  # two invoices, two periods
    assert view["subscription"]["id"] == subscription

    trigger_and_wait(admin, api_server, "charge.dispute.created", "--customer", customer)

    view = customer_view(admin, customer)
    (dispute,) = view["disputes"]
    assert dispute["status"] == "needs_response"
    assert dispute["reason"] == "fraudulent"
    assert [(e["kind"], e["amount"]) for e in view["ledger"]][2:] == [
        ("pack_credits", PACK),
        ("dispute_hold", -PACK),
    ]
    assert view["credits_balance"] == 2 * STARTER
    assert view["plan"] == "starter"
    wait_for_mail(smtp_server, ADMIN_MAILBOX, mentions(dispute["id"]))
    wait_for_mail(smtp_server, email_of(customer), subject_starts("Receipt"))


def test_the_ce3_story_is_a_visa_compelling_evidence_case(api_server, worker, admin):
    result = trigger_and_wait(admin, api_server, "charge.dispute.created", "--story", "ce3")

    types = [t for _, _, t in sent(result)]
    assert types.count("charge.succeeded") == 3 and types[-1] == "charge.dispute.created"
    (dispute,) = customer_view(admin, new_customer_of(result))["disputes"]
    draft = admin.get(f"/api/admin/disputes/{dispute['id']}/evidence-draft").json()
    assert draft["visa_ce3"]["eligible"] is True, draft["visa_ce3"]
    assert len(draft["visa_ce3"]["prior_transactions"]) == 2
    assert "qualified" in draft["visa_ce3"]["reason"]


def test_a_story_of_another_type_is_refused():
    result = trigger("invoice.paid", "--story", "ce3", "--url", "http://127.0.0.1:9")
    assert result.exit_code == 2
    assert "no story 'ce3' of invoice.paid" in result.stderr


# --- Where it sends, what it signs with -------------------------------------------------------


def test_without_url_it_sends_to_the_running_billing_up_with_its_secret(
    api_server, worker, admin, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "up.json").write_text(
        json.dumps({"api_url": api_server.url, "webhook_secret": WEBHOOK_SECRET, "pid": 1})
    )

    result = trigger("customer.created", env={"STRIPE_WEBHOOK_SECRET": ""})

    assert result.exit_code == 0, result.stderr
    ((event_id, status, _),) = sent(result)
    assert status == 200
    assert wait_until_handled(admin, event_id)["status"] == "processed"


def test_a_bare_address_gets_the_webhook_path(api_server, worker, admin):
    result = trigger("customer.created", "--url", api_server.url)

    assert result.exit_code == 0, result.stderr
    ((event_id, status, _),) = sent(result)
    assert status == 200
    assert wait_until_handled(admin, event_id)["status"] == "processed"


def test_a_wrong_secret_prints_the_refusal_and_exits_1(api_server):
    result = trigger(
        "customer.created",
        "--url",
        api_server.url + WEBHOOK,
        env={"STRIPE_WEBHOOK_SECRET": "whsec_no"},
    )

    assert result.exit_code == 1
    ((_, status, event_type),) = sent(result)
    assert (status, event_type) == (401, "customer.created")
    assert len(result.stderr.splitlines()) == 1
    assert "401" in result.stderr


def test_the_placeholder_price_still_reaches_processed(api_server, worker, admin):
    result = trigger(
        "checkout.session.completed",
        "--url",
        api_server.url + WEBHOOK,
        env={"STRIPE_PRICE_STARTER_TEST": ""},
    )

    assert result.exit_code == 0, result.stderr
    for event_id, _, event_type in sent(result):
        assert wait_until_handled(admin, event_id)["status"] == "processed", event_type
