"""Sign a payload the way Stripe signs webhook deliveries (for `billing trigger`, tests and
benchmarks; the endpoint verifies with Stripe's own library)."""

from __future__ import annotations

import hashlib
import hmac
import time


def stripe_signature_header(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header value: `t=<unix time>,v1=<hex HMAC-SHA256>`."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"
