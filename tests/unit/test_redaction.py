"""Redaction: what the Sentry scrubber, `redact_text` and `redact_for_client` leave of
addresses, cards, credentials and signatures, on crafted events and on text built to make a
pattern backtrack. (What actually arrives at a Sentry server is tests/test_sentry_scrubbing.py.)"""

from __future__ import annotations

import json
import logging
import re

import hypothesis
import pytest
from hypothesis import strategies as st

from core import redaction
from core.redaction import redact_for_client, redact_text
from core.sentry import REPORTED, scrub_event
from tests.support.sensitive import (
    BEARER,
    CARD,
    CARD_DIGITS,
    COOKIE,
    EMAIL,
    FORBIDDEN,
    SECRET_KEY,
    SIGNATURE,
)


def test_the_scrubber_walks_the_whole_event():
    event = {
        "message": f"refund for {EMAIL}",
        "logentry": {"message": "charge %s failed", "params": [CARD], "formatted": CARD},
        "exception": {
            "values": [
                {"type": "ValueError", "value": f"card {CARD_DIGITS} of {EMAIL}"},
                {"type": "StripeError", "value": f"Invalid API Key provided: {SECRET_KEY}"},
            ]
        },
        "breadcrumbs": {
            "values": [
                {"category": "tasks.emails", "message": f"email 3 sent to {EMAIL}"},
                {"category": "httplib", "data": {"url": f"https://x.test/?email={EMAIL}"}},
                {"message": f"signed t=1,v1={SIGNATURE}", "data": {"Cookie": COOKIE}},
            ]
        },
        "request": {
            "headers": {
                "Authorization": f"Bearer {BEARER}",
                "Stripe-Signature": f"t=1,v1={SIGNATURE}",
                "X-Forwarded-Email": EMAIL,
                "User-Agent": "Stripe/1.0",
            },
            "cookies": {"session": COOKIE},
            "query_string": f"email={EMAIL}",
            "data": {"card": {"number": CARD, "cvc": "123", "exp_month": 4, "exp_year": 2030}},
        },
        "tags": {"customer_email": EMAIL, "stripe_event_id": "evt_123"},
        "extra": {
            "nested": [{"deeper": [{"api_key": "k", "note": f"to {EMAIL}"}]}],
            "webhook_secret": "whsec_abcdef",
            "row_id": 12,
        },
        "contexts": {"trace": {"trace_id": "4c79f60c11214eb38604f4ae0781bfb2"}},
    }

    scrubbed = scrub_event(event, {})

    text = json.dumps(scrubbed)
    for forbidden in (*FORBIDDEN, "whsec_abcdef", '"123"'):
        assert forbidden not in text
    headers = scrubbed["request"]["headers"]
    assert headers["Authorization"] == headers["Stripe-Signature"] == "[Filtered]"
    assert headers["User-Agent"] == "Stripe/1.0"
    card = scrubbed["request"]["data"]["card"]
    assert card == {"number": "[card]", "cvc": "[Filtered]", "exp_month": "[Filtered]",
                    "exp_year": "[Filtered]"}  # fmt: skip
    assert scrubbed["exception"]["values"][0]["value"] == "card [card] of j***@example.com"
    assert scrubbed["breadcrumbs"]["values"][0]["message"] == "email 3 sent to j***@example.com"
    assert scrubbed["extra"]["nested"][0]["deeper"][0] == {
        "api_key": "[Filtered]",
        "note": "to j***@example.com",
    }
    # What identifies the failure is left alone.
    assert scrubbed["tags"]["stripe_event_id"] == "evt_123"
    assert scrubbed["extra"]["row_id"] == 12
    assert scrubbed["contexts"] == event["contexts"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("card 4242 4242 4242 4242 declined", "card [card] declined"),
        ("card 4000-0566-5566-5556", "card [card]"),
        ("amex 378282246310005", "amex [card]"),
        # Numbers starting with 2: Mastercard's 2-series and Mir's.
        ("mastercard 2223003122003222", "mastercard [card]"),
        ("mir 2200000000000004", "mir [card]"),
        # Not cards: fails the Luhn check, part of an id, too long; a millisecond timestamp
        # and a thread id that pass the Luhn check but start as no card network's number.
        ("order 4242424242424241", "order 4242424242424241"),
        ("in_4242424242424242", "in_4242424242424242"),
        ("at 1700000000004", "at 1700000000004"),
        ("thread 139834485906305", "thread 139834485906305"),
        # Event row ids (a month times 2^40 plus a sequence) that pass the Luhn check, as a
        # task's arguments show them in Celery's lines: 17 digits starting 2 is no card's.
        (
            "event rows [[26743421322396883, 26743421322396891]]",
            "event rows [[26743421322396883, 26743421322396891]]",
        ),
        ("17 digits 22230031220032222", "17 digits 22230031220032222"),
        ("ref 42424242424242424242424", "ref 42424242424242424242424"),
        ("key rk_test_abc and whsec_Q1w2", "key rk_test_[Filtered] and whsec_[Filtered]"),
        ("authorization: basic dXNlcjpwYXNz", "authorization: basic [Filtered]"),
        ("from a.b+c@mail.example.co.uk", "from a***@mail.example.co.uk"),
        ("already j***@example.com", "already j***@example.com"),
        # Not addresses: a release name, the local sender.
        ("stripe-billing-platform@0.1.0", "stripe-billing-platform@0.1.0"),
        ("from billing@localhost", "from billing@localhost"),
        ("GET /x?email=jane.doe%40example.com&a=1", "GET /x?email=j***%40example.com&a=1"),
        (
            "postgresql://billing:Hunter2Passw0rd@postgres:5432/billing",
            "postgresql://billing:[Filtered]@postgres:5432/billing",
        ),
        (
            "smtps://mailer:Hunter2x@smtp.internal:465",
            "smtps://mailer:[Filtered]@smtp.internal:465",
        ),
        ("Flower basic auth on for ops", "Flower basic auth on for ops"),
        # Publishable keys, keys without a mode, and keys as Stripe masks them in its errors.
        ("publishable pk_live_51HxYz", "publishable pk_live_[Filtered]"),
        ("old key sk_51HxYz", "old key sk_[Filtered]"),
        (
            "Invalid API Key provided: sk_test_****abcd",
            "Invalid API Key provided: sk_test_[Filtered]",
        ),
        # Internationalised domains, in Unicode or in punycode.
        ("to zoë@exämple.рф", "to z***@exämple.рф"),
        ("to jane@example.xn--p1ai", "to j***@example.xn--p1ai"),
    ],
)
def test_redacted_text(text, expected):
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A key goes whole, and any number of a card's length, Luhn-valid or not.
        (
            "Invalid card number 4242 4242 4242 4242 for key sk_test_51Habc",
            "Invalid card number [card] for key [key]",
        ),
        (
            "The provided key 'rk_test_****abcd' has no access",
            "The provided key '[key]' has no access",
        ),
        ("number 4242424242424241 and 1700000000004", "number [card] and [card]"),
        ("whsec_Q1w2 and pk_test_abc", "[key] and [key]"),
        # The other rules are `redact_text`'s.
        ("No customer jane.doe@example.com", "No customer j***@example.com"),
        ("token Bearer abcdefgh12345678", "token Bearer [Filtered]"),
        # Ids and short numbers stay.
        ("No such price: 'price_pro_test'", "No such price: 'price_pro_test'"),
        ("in_4242424242424242 of 2000 cents", "in_4242424242424242 of 2000 cents"),
    ],
)
def test_redacted_for_a_client(text, expected):
    assert redact_for_client(text) == expected


def test_a_log_line_reported_by_its_caller_is_not_reported_again():
    reported = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, None)
    reported.__dict__.update(REPORTED)
    plain = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, None)

    assert scrub_event({"message": "failed"}, {"log_record": reported}) is None
    assert scrub_event({"message": "failed"}, {"log_record": plain}) == {"message": "failed"}


ADVERSARIAL = {
    "a long run before an @": "a" * 1_000_000 + "@",
    "dotted labels": "x@" + "a." * 500_000,
    "dashed labels": "x@" + "a-" * 500_000 + ".com",
    "a scheme that never ends": "http://" + "a" * 1_000_000,
    "a long password": "http://u:" + "p" * 1_000_000,
    "scheme-like words": "a.b " * 250_000,
    "digits": "4" * 1_000_000,
    "spaced digits": "4 " * 500_000,
    "bearer words": "Bearer " * 150_000,
}


# A guard against a quadratic pattern (the first email pattern took 3.6 s for a 32 KB header
# and would take about an hour for 1 MB): each case is milliseconds, a regression is minutes.
@pytest.mark.timeout(60)
@pytest.mark.parametrize("text", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_redaction_stays_linear_on_a_megabyte_built_to_backtrack(text):
    patterns = [
        value
        for name, value in vars(redaction).items()
        if name.startswith("_") and isinstance(value, re.Pattern)
    ]
    assert len(patterns) >= 8
    for pattern in patterns:
        pattern.sub("x", text)  # uncapped: the patterns themselves must be linear
    assert len(redact_text(text)) <= redaction.MAX_REDACTED_CHARS + 20
    assert len(redact_for_client(text)) <= redaction.MAX_REDACTED_CHARS + 20


# Fragments of everything the patterns look for, so that generated text often holds a
# whole secret, half of one, or one cut by a separator.
_FRAGMENTS = (
    "sk_live_",
    "rk_test_",
    "pk_",
    "whsec_",
    "k_",
    "abcDEF123",
    "Bearer ",
    "basic ",
    "eyJhbGciOi",
    ".",
    "v1=",
    "0" * 64,
    "4242",
    "4242 4242 4242 4242",
    "5555-5555-5555-4444",
    "378282246310005",
    "1700000000000",
    "jane.doe",
    "@",
    "%40",
    "example.com",
    "https://",
    "user:pw@",
    " ",
    "-",
    "evt_1Qa",
    "Zoë",
)


@hypothesis.given(st.lists(st.sampled_from(_FRAGMENTS), max_size=12).map("".join))
@hypothesis.settings(max_examples=400, deadline=None)
def test_the_quick_check_never_lets_through_what_the_patterns_would_redact(text):
    # redact_text returns text untouched when no pattern can match it: that check must be
    # a superset of the patterns, or a secret would slip through unredacted.
    assert redact_text(text) == redaction._redact_patterns(text)
