"""The one redactor: what a log line, a Sentry event or an answer to a client may keep.

Nothing that leaves the process holds a whole email address, a Stripe key, a password in a
URL, a bearer token, a JWT, a webhook signature or a card number. `redact_text` serves logs
and Sentry; `redact_for_client` serves a message shown in an HTTP answer, with the same
rules and two stricter ones (see there). `redact_data` walks a JSON-like value.

Every pattern is linear in its input (each one starts only where a run of its characters
starts), and text longer than `MAX_REDACTED_CHARS` is cut before any pattern runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Final

from sentry_sdk.scrubber import DEFAULT_DENYLIST, DEFAULT_PII_DENYLIST

FILTERED: Final = "[Filtered]"  # what Sentry's own scrubbers write in place of a value
CARD: Final = "[card]"
KEY: Final = "[key]"

# Longer strings are cut before redaction: Sentry and a log line gain nothing past this, and
# no regex can then be made to run long on an attacker's megabyte.
MAX_REDACTED_CHARS = 64 * 1024

# The top-level domain must hold letters (no TLD is all digits): `stripe-billing-platform@0.1.0`
# (the release, in every Sentry event) is no address. Unicode letters and punycode (`xn--`)
# count, so `jane@пример.рф` goes too.
# The local part starts only where a run of its characters starts (the lookbehind): without
# that anchor every position of a long run was tried again, quadratic in its length (a 32 KB
# header held the event loop for 3.6 s). `%40` is an `@` in a query string or a referer.
_EMAIL = re.compile(
    r"(?<![\w.+%-])[\w.+-]+(?:@|%40)[\w-]+(?:\.[\w-]+)*\.(?:[^\W\d_]{2,}|xn--[\w-]+)(?![\w-])"
)
# `scheme://user:password@host`: the password goes, the user and the host stay.
# (Anchored at the start of a scheme-character run, like the email pattern, to stay linear.)
_URL_CREDENTIALS = re.compile(
    r"(?<![a-z0-9+.-])([a-z][a-z0-9+.-]*://[^\s/:@]*:)[^\s/@]+@", re.IGNORECASE
)
# Stripe's keys: secret, restricted and publishable API keys (with or without the mode) and
# webhook signing secrets, also as Stripe masks them in its errors (`sk_test_****abcd`).
# The prefix is group 1: a log reader still sees which kind of key was there.
_STRIPE_KEY = re.compile(r"\b((?:sk|rk|pk)_(?:live_|test_)?|whsec_)[0-9A-Za-z*]+")
# A credential is 8 characters at least and not a plain lower-case word: prose such as
# "basic auth on for ops" stays readable.
_BEARER = re.compile(r"\b((?i:bearer|basic))\s+(?![a-z]+(?![\w.~+/=-]))[\w.~+/=-]{8,}")
_JWT = re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]*")
# A Stripe-Signature header's signatures (`t=...,v1=<hex>,v0=<hex>`).
_SIGNATURE = re.compile(r"\b(v[01]=)[0-9a-f]{64}\b")
# In logs and Sentry: 13 to 19 digits, maybe grouped by spaces or dashes, not part of a longer
# number or word, starting as the card networks' numbers do (2-6: Mastercard, Amex, Diners,
# JCB, Visa, Discover, UnionPay, Mir; `_may_be_a_card` narrows those starting with 2), and
# replaced only when the Luhn check passes: millisecond timestamps and thread ids (which start
# with 1), event row ids and most other long numbers survive.
_PAN = re.compile(r"(?<!\w)(?<!\d[ -])[2-6](?:[ -]?\d){12,18}(?![ -]?\d)(?!\w)")
# What each of the patterns above needs to match somewhere (a Stripe key's `k_` or `whsec_`,
# the scheme of a bearer or basic credential, a JWT's `eyJ`, a signature's `v1=`, a card's
# first 13 digits); text without any of them, `://`, `@` or `%40` is left as it is.
_MAYBE_SECRET = re.compile(r"k_|whsec_|eyJ|v[01]=|(?i:bearer|basic)|[2-6](?:[ -]?\d){12}")
# In an answer to a client: any number of a card's length, Luhn or not (a mistyped card is
# still the user's card number, and Stripe's messages carry no timestamps worth keeping).
_CARD_LENGTH_NUMBER = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")


def redact_email(address: str) -> str:
    """`jane.doe@example.com` → `j***@example.com`: enough to tell people apart in a log."""
    separator = "@" if "@" in address else "%40"
    local, _, domain = address.partition(separator)
    if not domain:
        return "***"
    return f"{local[:1]}***{separator}{domain}"


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _may_be_a_card(digits: str) -> bool:
    """A card network issues numbers of this shape. Those starting with 2 are only
    Mastercard's 2-series (2221-2720, 16 digits) and Mir's (2200-2204, 16 to 19): an event
    row id (its month times 2^40 plus a sequence: 17 digits starting 26, then 27 from 2046,
    2 until 2273) is none, though one in ten passes the Luhn check."""
    if digits[0] == "2":
        prefix = int(digits[:4])
        mastercard = len(digits) == 16 and 2221 <= prefix <= 2720
        mir = 16 <= len(digits) <= 19 and 2200 <= prefix <= 2204
        if not (mastercard or mir):
            return False
    return _luhn_valid(digits)


def _redact_card(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group(0))
    return CARD if _may_be_a_card(digits) else match.group(0)


def _redact_credentials(text: str, *, key_replacement: str) -> str:
    if len(text) > MAX_REDACTED_CHARS:
        text = text[:MAX_REDACTED_CHARS] + "…[truncated]"
    if "://" in text:
        text = _URL_CREDENTIALS.sub(r"\1" + FILTERED + "@", text)
    if "@" in text or "%40" in text:
        text = _EMAIL.sub(lambda m: redact_email(m.group(0)), text)
    text = _STRIPE_KEY.sub(key_replacement, text)
    text = _BEARER.sub(r"\1 " + FILTERED, text)
    text = _JWT.sub(FILTERED, text)
    return _SIGNATURE.sub(r"\1" + FILTERED, text)


def redact_text(text: str) -> str:
    """The text without email addresses, URL passwords, Stripe keys, bearer tokens, JWTs,
    webhook signatures or card numbers; a key keeps its prefix (`sk_live_[Filtered]`)."""
    # Most text holds nothing to redact (a log line's level, logger, ids and message): one
    # scan for what every pattern needs to match, instead of seven patterns, each a scan.
    if (
        len(text) <= MAX_REDACTED_CHARS
        and "://" not in text
        and "@" not in text
        and "%40" not in text
        and _MAYBE_SECRET.search(text) is None
    ):
        return text
    return _redact_patterns(text)


def _redact_patterns(text: str) -> str:
    """`redact_text` without its quick check: every pattern, always."""
    text = _redact_credentials(text, key_replacement=r"\1" + FILTERED)
    return _PAN.sub(_redact_card, text)


def redact_for_client(text: str) -> str:
    """`redact_text` for a message shown in an HTTP answer: a key goes whole (`[key]`: the
    client has no use for its kind) and so does every number of a card's length."""
    text = _redact_credentials(text, key_replacement=KEY)
    return _CARD_LENGTH_NUMBER.sub(CARD, text)


# Sentry's own lists, matched whole (as its EventScrubber does), plus card fields. They
# cannot be handed to the SDK's EventScrubber: the SDK turns that off once `data_collection`
# is configured, which `core.sentry.init_sentry` does.
_DENIED_KEYS = frozenset(
    key.lower().replace("-", "_")
    for key in (*DEFAULT_DENYLIST, *DEFAULT_PII_DENYLIST, "cvc", "cvv", "cvc2", "cvv2")
) | {"exp_month", "exp_year", "card_number"}
# ... and any key containing one of these: `stripe-signature`, `x-api-token`, `db_password`.
_DENIED_KEY_PARTS = (
    "authorization",
    "cookie",
    "signature",
    "token",
    "secret",
    "password",
    "passwd",
    "api_key",
    "apikey",
    "private_key",
)


def is_sensitive_key(key: str) -> bool:
    normal = key.lower().replace("-", "_")
    return normal in _DENIED_KEYS or any(part in normal for part in _DENIED_KEY_PARTS)


@lru_cache(maxsize=4096)
def _redacted_key(key: str) -> tuple[str, bool]:
    """A mapping key as it may be written, and whether its value must be filtered. Keys are
    few and repeat on every log line (`event_id`, `task_name`, ...): worked out once each."""
    return redact_text(key), is_sensitive_key(key)


def redact_data(value: Any) -> Any:
    """A copy of a JSON-like value with every sensitive key's value filtered and every
    string passed through `redact_text`; anything else is returned as it is."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        redacted = {}
        for k, v in value.items():
            if not isinstance(k, str):
                redacted[k] = redact_data(v)
                continue
            key, sensitive = _redacted_key(k)
            redacted[key] = (
                FILTERED if sensitive and v not in (None, "", {}, []) else redact_data(v)
            )
        return redacted
    if isinstance(value, list | tuple):
        return [redact_data(item) for item in value]
    return value
