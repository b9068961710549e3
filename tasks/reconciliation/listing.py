"""Every object of a Stripe list endpoint, one page of plain dicts at a time.

This is `auto_paging_iter`'s walk (ask for the next page with `starting_after` = the last id,
until `has_more` is false) without its cost: the stripe library turns every object of every
page into nested `StripeObject`s, about ten times the cost of the walk itself (figures in
docs/performance.md), which would put 100,000 subscriptions past the nightly run's 60 s
target. `StripeClient.raw_request` keeps everything else of the client (key, base
address, network retries, error mapping, the rate-limited transport) and hands back the
parsed JSON, which also keeps `*_decimal` fields as the strings Stripe sent.

Only one page is held at a time, so memory stays flat whatever the count.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import stripe

from core.stripe_objects import StripeDict

PAGE_SIZE = 100  # Stripe's largest page


def list_pages(
    client: stripe.StripeClient, path: str, params: dict[str, Any]
) -> Iterator[list[StripeDict]]:
    """Each page's objects, in Stripe's order, until the list ends."""
    query = {**params, "limit": PAGE_SIZE}
    while True:
        page = client.raw_request("get", path, **query).data
        objects: list[StripeDict] = page.get("data") or []
        if objects:
            yield objects
        if not page.get("has_more") or not objects:
            return
        query["starting_after"] = objects[-1]["id"]
