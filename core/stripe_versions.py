"""The Stripe API versions the platform's fixtures prove, and where another version stands.

Webhooks arrive in the API version of the endpoint, which the account chose, not us. Every
version from OLDEST_PROVEN to NEWEST_PROVEN has its fixtures under `tests/fixtures/stripe/`
and every handler is tested in them; an event outside that range is still processed (Stripe
keeps old shapes readable, and new ones mostly add), but counted, so an operator sees it.
"""

from __future__ import annotations

from enum import StrEnum

OLDEST_PROVEN = "2017-08-15"
# Also the default of STRIPE_API_VERSION, the version the Stripe client pins.
NEWEST_PROVEN = "2026-10-28.endive"


class VersionStanding(StrEnum):
    OLDER = "older"  # before OLDEST_PROVEN
    NEWER = "newer"  # after NEWEST_PROVEN
    UNKNOWN = "unknown"  # no version, or not `YYYY-MM-DD[.name]`


def _release_date(version: str) -> str | None:
    date = version.split(".", 1)[0]
    parts = date.split("-")
    if len(parts) != 3 or not all(p.isdigit() for p in parts) or len(date) != 10:
        return None
    return date


def unproven_standing(version: str | None) -> VersionStanding | None:
    """Where an event's API version stands outside the proven range; None inside it."""
    date = _release_date(version or "")
    if date is None:
        return VersionStanding.UNKNOWN
    if date < _release_date(OLDEST_PROVEN):  # type: ignore[operator]
        return VersionStanding.OLDER
    if date > _release_date(NEWEST_PROVEN):  # type: ignore[operator]
        return VersionStanding.NEWER
    return None
