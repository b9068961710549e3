"""The pure rules of issue 17: a fraud warning's share of settlement, Visa CE 3.0's matching,
the monitoring statuses, and the buyer's IP behind trusted proxies."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from starlette.requests import Request

from api.client_info import buyer_ip
from billing.dispute_rates import _rate, parse_month, previous_month
from billing.evidence import qualifies
from billing.settlement import Chargeback, PaymentFacts, Refunded, Targets, settle


def warned(**facts) -> PaymentFacts:
    return PaymentFacts(granted=100, paid=100, fraud_warned=True, **facts)


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (warned(), Targets(refund=0, fraud_warning=-100)),
        # A refund takes its share; the warning holds the rest.
        (warned(refunds=[Refunded(100, 40)]), Targets(refund=-40, fraud_warning=-60)),
        # Refunded in full: nothing left to hold.
        (warned(refunds=[Refunded(100, 100)]), Targets(refund=-100, fraud_warning=0)),
        # A chargeback takes over, open or won: never held twice.
        (
            warned(chargebacks=[Chargeback("du_1", "needs_response", 100)]),
            Targets(refund=0, disputes={"du_1": -100}, fraud_warning=0),
        ),
        (
            warned(chargebacks=[Chargeback("du_1", "won", 100)]),
            Targets(refund=0, disputes={"du_1": 0}, fraud_warning=0),
        ),
        (
            PaymentFacts(granted=0, fraud_warned=True),
            Targets(refund=0, fraud_warning=0),
        ),
    ],
)
def test_a_warning_holds_what_refunds_and_chargebacks_do_not(facts, expected):
    assert settle(facts) == expected


@pytest.mark.parametrize(
    ("matched", "ok"),
    [
        (["customer_account_id", "customer_purchase_ip"], True),
        (["customer_account_id", "customer_device_fingerprint"], True),
        (["customer_purchase_ip", "customer_device_fingerprint"], True),
        (["customer_account_id"], False),
        (["customer_purchase_ip"], False),
        (["customer_account_id", "shipping_address"], False),  # neither IP nor device
    ],
)
def test_ce3_needs_two_elements_one_of_them_the_ip_or_the_device(matched, ok):
    assert qualifies(matched) is ok


def rate(settled: int, count: int):
    return _rate(
        "visa",
        settled=settled,
        fraud_reports=count,
        disputes=0,
        count=count,
        threshold=0.015,
        count_threshold=1500,
        share=0.7,
    )


@pytest.mark.parametrize(
    ("settled", "count", "status"),
    [
        (100_000, 1500, "over"),  # 1.5% and 1,500
        (100_000, 1499, "warning"),  # the ratio, not the count
        (100_000, 1050, "warning"),  # 70% of both
        (100_000, 1049, "ok"),
        (1000, 100, "ok"),  # 10%, but far below the count: a small merchant is not enrolled
        (0, 0, "ok"),
    ],
)
def test_a_network_is_over_at_both_thresholds_and_warned_at_70_percent(settled, count, status):
    assert rate(settled, count).status == status


def test_months():
    assert parse_month("2026-12") == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert previous_month("2026-01") == "2025-12"
    for bad in ("2026-13", "2026-1", "26-01", "2026-01-01"):
        with pytest.raises(ValueError):
            parse_month(bad)


def request(forwarded: list[str], client: str = "10.0.0.2") -> Request:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return Request({"type": "http", "headers": headers, "client": (client, 1234)})


@pytest.mark.parametrize(
    ("forwarded", "hops", "ip"),
    [
        ([], 0, "10.0.0.2"),
        (["203.0.113.7"], 1, "203.0.113.7"),
        (["1.2.3.4, 203.0.113.7"], 1, "203.0.113.7"),  # the client forged the first
        (["1.2.3.4, 203.0.113.7, 10.0.0.9"], 2, "203.0.113.7"),
        (["203.0.113.7"], 2, None),  # fewer entries than proxies: unknown, not forged
        (["not-an-ip"], 1, None),
        (["1.2.3.4", "203.0.113.7"], 1, "203.0.113.7"),  # several headers are one list
    ],
)
def test_the_buyer_ip_is_the_one_the_outermost_trusted_proxy_saw(forwarded, hops, ip):
    assert buyer_ip(request(forwarded), hops=hops) == ip
