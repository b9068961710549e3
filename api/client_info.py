"""Who is on the other end of a request: the buyer's IP behind trusted proxies, and the
device fingerprint the host application's front end sends (`X-Device-Fingerprint`)."""

from __future__ import annotations

import ipaddress

from fastapi import HTTPException, Request

DEVICE_HEADER = "X-Device-Fingerprint"
MAX_DEVICE_LENGTH = 500  # Stripe takes up to 5,000; a fingerprint is a hash, far shorter


def buyer_ip(request: Request, *, hops: int) -> str | None:
    """The client's address as the outermost trusted proxy saw it: with `hops` proxies each
    appending to `X-Forwarded-For`, the entry `hops` from the right; anything further left
    came from the client and may be forged. 0 hops: the connection's own address."""
    candidate: str | None
    if hops <= 0:
        candidate = request.client.host if request.client else None
    else:
        forwarded = [
            part.strip()
            for header in request.headers.getlist("x-forwarded-for")
            for part in header.split(",")
            if part.strip()
        ]
        candidate = forwarded[-hops] if len(forwarded) >= hops else None
    if candidate is None:
        return None
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None  # a test client's name, or a proxy's garbage: no address rather than junk


def buyer_device(request: Request) -> str | None:
    """The optional device fingerprint header; 400 when it is not a short printable string."""
    value = request.headers.get(DEVICE_HEADER)
    if value is None or value == "":
        return None
    if len(value) > MAX_DEVICE_LENGTH or not value.isprintable():
        raise HTTPException(
            400, f"{DEVICE_HEADER} must be printable and at most {MAX_DEVICE_LENGTH} characters."
        )
    return value
