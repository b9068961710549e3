"""The webhook signature check on its own: Stripe's `t=...,v1=...` scheme, with every
configured secret tried (rotation) and every `v1` signature of the header considered."""

from __future__ import annotations

import time

from api.signature import verify_signature
from core.webhook_signing import stripe_signature_header

BODY = b'{"id": "evt_1", "object": "event", "type": "invoice.paid"}'
CURRENT, PREVIOUS = "whsec_current", "whsec_previous"
TOLERANCE = 300


def v1_of(header: str) -> str:
    return header.partition(",v1=")[2]


def test_a_body_signed_with_the_secret_verifies():
    header = stripe_signature_header(BODY, CURRENT)
    assert verify_signature(BODY, header, (CURRENT,), TOLERANCE) is True


def test_another_secret_does_not_verify():
    header = stripe_signature_header(BODY, "whsec_someone_else")
    assert verify_signature(BODY, header, (CURRENT, PREVIOUS), TOLERANCE) is False


def test_a_changed_body_does_not_verify():
    header = stripe_signature_header(BODY, CURRENT)
    tampered = BODY.replace(b"invoice.paid", b"invoice.void")
    assert verify_signature(tampered, header, (CURRENT,), TOLERANCE) is False


def test_a_changed_timestamp_does_not_verify():
    signed_at = int(time.time()) - 10
    header = stripe_signature_header(BODY, CURRENT, timestamp=signed_at)
    moved = header.replace(f"t={signed_at}", f"t={signed_at + 5}")
    assert verify_signature(BODY, moved, (CURRENT,), TOLERANCE) is False


def test_a_signature_older_than_the_tolerance_does_not_verify():
    now = int(time.time())
    fresh = stripe_signature_header(BODY, CURRENT, timestamp=now - TOLERANCE // 2)
    stale = stripe_signature_header(BODY, CURRENT, timestamp=now - TOLERANCE - 60)
    assert verify_signature(BODY, fresh, (CURRENT,), TOLERANCE) is True
    assert verify_signature(BODY, stale, (CURRENT,), TOLERANCE) is False


def test_during_a_rotation_either_secret_verifies():
    for secret in (CURRENT, PREVIOUS):
        header = stripe_signature_header(BODY, secret)
        assert verify_signature(BODY, header, (CURRENT, PREVIOUS), TOLERANCE) is True


def test_no_configured_secret_verifies_nothing():
    header = stripe_signature_header(BODY, CURRENT)
    assert verify_signature(BODY, header, (), TOLERANCE) is False


def test_any_of_several_v1_signatures_may_match():
    # While Stripe rolls an endpoint's secret it signs with both: one `v1` per secret.
    now = int(time.time())
    ours = v1_of(stripe_signature_header(BODY, CURRENT, timestamp=now))
    theirs = v1_of(stripe_signature_header(BODY, "whsec_rolled_away", timestamp=now))
    for header in (f"t={now},v1={theirs},v1={ours}", f"t={now},v1={ours},v1={theirs}"):
        assert verify_signature(BODY, header, (CURRENT,), TOLERANCE) is True
    assert verify_signature(BODY, f"t={now},v1={theirs},v1={theirs}", (CURRENT,), TOLERANCE) is (
        False
    )
