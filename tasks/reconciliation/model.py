"""What a run found: its report and the items in it, the same for a real run and a dry one."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class ItemKind(StrEnum):
    DRIFT = "drift"  # one field differs
    ADOPTED = "adopted"  # Stripe has it, we never saw it: stored with its customer
    MISSING_IN_STRIPE = "missing_in_stripe"  # we have it, Stripe does not: marked, kept
    MISSED_EVENT = "missed_event"  # an undelivered event we lacked: stored and queued


@dataclass(frozen=True, slots=True)
class Item:
    kind: str
    object_id: str
    customer_id: str | None
    field: str
    local_value: Any
    stripe_value: Any
    fixed: bool
    reason: str | None


@dataclass(slots=True)
class Report:
    """What a run found; `run_id` None for a dry run."""

    run_id: int | None
    status: str
    dry_run: bool
    checked: int = 0
    drifted: int = 0
    fixed: int = 0
    phase: str = "queued"
    last_subscription_id: str | None = None
    error: str | None = None
    missed_events: str | None = None
    missed_events_detail: str | None = None
    items: list[Item] = field(default_factory=list)
