"""Spending credits: once per key, never below zero, refused while a chargeback holds the
balance negative."""

from __future__ import annotations

import threading

import pytest

from db import ledger
from db.accounts import find_account
from db.session import transaction
from tests.support.stripe_events import (
    CREDITS,
    Ids,
    balance,
    dispute_event,
    known_customer,
    process_ok,
    stripe_event,
)


def spend(customer_id: str, amount: int, key: str) -> int:
    with transaction() as session:
        account = find_account(session, customer_id=customer_id)
        return ledger.consume(session, account_id=account.id, amount=amount, key=key).amount


def test_the_same_key_spends_once():
    ids = known_customer(Ids())
    process_ok(stripe_event("invoice.paid", ids))

    assert spend(ids.customer, 100, "req-1") == -100
    assert spend(ids.customer, 100, "req-1") == -100
    assert balance(ids.customer) == CREDITS["pro"] - 100


def test_a_short_balance_is_refused():
    ids = known_customer(Ids())
    process_ok(stripe_event("invoice.paid", ids))

    with pytest.raises(ledger.InsufficientCredits):
        spend(ids.customer, CREDITS["pro"] + 1, "too-much")
    assert balance(ids.customer) == CREDITS["pro"]


def test_a_negative_balance_after_a_chargeback_refuses_every_consumption():
    ids = known_customer(Ids())
    process_ok(stripe_event("invoice.paid", ids, api_version="2022-11-15"))
    spend(ids.customer, 1000, "before-the-dispute")
    process_ok(dispute_event("charge.dispute.created", ids))

    assert balance(ids.customer) == -1000
    with pytest.raises(ledger.InsufficientCredits):
        spend(ids.customer, 1, "during-the-dispute")


def test_two_concurrent_consumptions_never_both_spend_the_last_credits():
    ids = known_customer(Ids())
    process_ok(stripe_event("invoice.paid", ids))
    spend(ids.customer, CREDITS["pro"] - 10, "almost-all")
    outcomes: list[str] = []

    def try_spend(key: str) -> None:
        try:
            spend(ids.customer, 10, key)
            outcomes.append("spent")
        except ledger.InsufficientCredits:
            outcomes.append("refused")

    threads = [threading.Thread(target=try_spend, args=(f"last-{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["refused", "refused", "refused", "spent"]
    assert balance(ids.customer) == 0
