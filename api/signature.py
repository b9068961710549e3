"""Verify a Stripe-Signature header against every configured secret (rotation).

Stripe's scheme: the header is `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>`,
with more `v1=` entries while Stripe rolls a secret, and other schemes (`v0=`) to skip.

Checked here rather than with `stripe.WebhookSignature.verify_header`, which takes anything
a stranger sends into places that raise: it decodes the body as UTF-8 (UnicodeDecodeError
on other bytes), compares signatures with `hmac.compare_digest` on str (TypeError on a
non-ASCII character) and reads the timestamp with `int()` (which takes Arabic-Indic digits,
and refuses over 4,300). Each became a 500 without a valid signature. Hashing the raw bytes
gives the same HMAC for every UTF-8 body, the only kind Stripe sends, and saves decoding and
encoding the body again for every secret.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SCHEME = "v1"
# Unix seconds have 10 digits until the year 2286; more is not a timestamp, and a bound keeps
# int() linear and within its digit limit.
MAX_TIMESTAMP_DIGITS = 12


def parse_header(header: str) -> tuple[int, list[str]] | None:
    """The timestamp and the `v1` signatures, or None if the header has no usable pair."""
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, has_value, value = item.strip().partition("=")
        if not has_value:
            continue
        if key == "t" and timestamp is None:  # the first `t` counts, as in Stripe's libraries
            if not (value.isascii() and value.isdigit() and len(value) <= MAX_TIMESTAMP_DIGITS):
                return None
            timestamp = int(value)
        elif key == SCHEME and value.isascii():  # no hex digest has another character
            signatures.append(value)
    if timestamp is None or not signatures:
        return None
    return timestamp, signatures


def verify_signature(body: bytes, header: str, secrets: tuple[str, ...], tolerance: int) -> bool:
    """True if any secret signed this body within the tolerance (seconds; 0 for no limit)."""
    parsed = parse_header(header)
    if parsed is None:
        return False
    timestamp, signatures = parsed
    if tolerance and timestamp < time.time() - tolerance:
        return False
    prefix = b"%d." % timestamp
    for secret in secrets:
        # surrogateescape: a secret read from the environment as bytes Python could not
        # decode is hashed as those bytes, not refused with a 500.
        mac = hmac.new(secret.encode("utf-8", "surrogateescape"), prefix, hashlib.sha256)
        mac.update(body)  # no `prefix + body`: that would copy a body of up to a mebibyte
        expected = mac.hexdigest()
        if any(hmac.compare_digest(expected, signature) for signature in signatures):
            return True
    return False
