"""Verify a Stripe-Signature header against every configured secret (rotation)."""

from __future__ import annotations

import stripe


def verify_signature(body: bytes, header: str, secrets: tuple[str, ...], tolerance: int) -> bool:
    """True if any secret signed this body within the tolerance; Stripe's own code checks."""
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(body, header, secret, tolerance)
        except stripe.SignatureVerificationError:
            continue
        return True
    return False
