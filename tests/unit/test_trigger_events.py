"""`billing trigger` without a platform to send to: the events it builds for every handled
type, and its refusals of bad input. (Sending them to a real API and worker is
tests/test_trigger.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli.main import main
from cli.sample_events import API_VERSION, BUILDERS, Story, build_events, supported_types
from core.plans import SHIPPED_PLANS_FILE, get_catalogue
from tasks.events.registry import HANDLERS
from tests.support.processes import free_port

WEBHOOK = "/api/stripe/webhook"


def trigger(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(main, ["trigger", *args], env=env)


# --- The event types and the builders agree ---------------------------------------------------


def test_every_handled_type_can_be_triggered_and_nothing_else():
    assert set(BUILDERS) == set(HANDLERS)
    assert supported_types() == sorted(HANDLERS)


def ids_in(value: Any) -> Iterator[str]:
    """Every `id` anywhere in an object."""
    if isinstance(value, dict):
        if isinstance(value.get("id"), str):
            yield value["id"]
        for item in value.values():
            yield from ids_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from ids_in(item)


def customers_in(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        if isinstance(value.get("customer"), str):
            yield value["customer"]
        if value.get("object") == "customer":
            yield value["id"]
        for item in value.values():
            yield from customers_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from customers_in(item)


@pytest.mark.parametrize("event_type", sorted(HANDLERS))
def test_each_type_is_a_stripe_event_of_that_type_with_new_ids(event_type):
    catalogue = get_catalogue()
    story = Story.begin(catalogue)
    events = build_events(event_type, story)
    again = build_events(event_type, Story.begin(catalogue, customer=story.customer))

    assert events[-1]["type"] == event_type
    assert events[0]["type"] == "customer.created"  # a new customer is made first
    assert again[0]["type"] != "customer.created" or event_type == "customer.created"
    for event in events:
        assert event["id"].startswith("evt_1")
        assert event["object"] == "event"
        assert event["api_version"] == API_VERSION
        assert event["livemode"] is False
        assert event["data"]["object"]["object"] in (
            "customer",
            "subscription",
            "invoice",
            "checkout.session",
            "charge",
            "credit_note",
            "dispute",
            "invoice_payment",
            "radar.early_fraud_warning",
        )
        # A dispute names no customer (as in Stripe): only its charge's payment leads there.
        assert set(customers_in(event)) <= {story.customer}
    assert set(customers_in(events)) == {story.customer}
    assert [e["created"] for e in events] == sorted({e["created"] for e in events})
    # Objects repeat within one story (a dispute's events share its id), never across two;
    # only the customer and the catalogue's prices are the same.
    first_ids = {i for i in ids_in(events) if i != story.customer and not i.startswith("price_")}
    assert first_ids
    assert not first_ids & set(ids_in(again))


def test_objects_carry_stripes_id_prefixes():
    events = build_events("charge.dispute.created", Story.begin(get_catalogue()))
    checkout, dispute = events[1]["data"]["object"], events[2]["data"]["object"]
    assert checkout["id"].startswith("cs_test_")
    assert checkout["payment_intent"].startswith("pi_")
    assert dispute["id"].startswith("dp_")
    assert dispute["charge"].startswith("ch_")
    subscription, paid = (
        e["data"]["object"]
        for e in build_events("checkout.session.completed", Story.begin(get_catalogue()))[1:3]
    )
    assert subscription["id"].startswith("sub_")
    assert paid["id"].startswith("in_")


# --- Bad input ---------------------------------------------------------------------------------


def test_no_secret_anywhere_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    result = trigger("customer.created", env={"STRIPE_WEBHOOK_SECRET": ""})

    assert result.exit_code == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert "STRIPE_WEBHOOK_SECRET" in result.stderr


def test_an_unknown_type_lists_the_supported_ones_and_exits_2():
    result = trigger("payment_intent.succeeded")

    assert result.exit_code == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert "payment_intent.succeeded" in line
    assert all(event_type in line for event_type in HANDLERS)


@pytest.mark.parametrize("customer", ["12345", "cus_", "sub_123", "cus_a b"])
def test_a_customer_that_is_not_a_customer_id_exits_2(customer):
    result = trigger("invoice.paid", "--customer", customer)

    assert result.exit_code == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert "--customer" in line


def test_an_unreachable_url_names_it_and_exits_1():
    url = f"http://127.0.0.1:{free_port()}{WEBHOOK}"

    result = trigger("customer.created", "--url", url)

    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert url in line


def test_a_url_that_is_not_http_exits_2():
    result = trigger("customer.created", "--url", "127.0.0.1:8000")

    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert "--url" in line


def test_a_catalogue_without_packs_cannot_trigger_a_refund(tmp_path):
    plans = tmp_path / "plans.toml"
    plans.write_text(SHIPPED_PLANS_FILE.read_text().split("[packs.")[0])

    result = trigger(
        "charge.refunded", "--url", "http://127.0.0.1:9", env={"PLANS_FILE": str(plans)}
    )

    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert "credit pack" in line


def test_an_unset_price_is_named_before_sending(tmp_path):
    url = f"http://127.0.0.1:{free_port()}{WEBHOOK}"

    result = trigger("invoice.paid", "--url", url, env={"STRIPE_PRICE_STARTER_TEST": ""})

    assert "STRIPE_PRICE_STARTER_TEST" in result.stderr.splitlines()[0]
    assert result.exit_code == 1  # nothing listens there: the warning came first


def test_the_help_lists_the_supported_types():
    result = CliRunner().invoke(main, ["trigger", "--help"])

    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert all(event_type in text for event_type in HANDLERS)
