"""What a reconciliation run found: its report and the items in it, the same for a real run
and a dry one. The one shape of a run: the pass fills it as it goes, a stored run is read
back into it from its rows (`RunReport.of_run`), and the admin API answers with it
(`api.schemas.RunOut`), so it lives beside the rows rather than in the task package."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

from db.models import ReconciliationItem, ReconciliationRun


class ItemKind(StrEnum):
    DRIFT = "drift"  # one field differs
    ADOPTED = "adopted"  # Stripe has it, we never saw it: stored with its customer
    MISSING_IN_STRIPE = "missing_in_stripe"  # we have it, Stripe does not: marked, kept
    MISSED_EVENT = "missed_event"  # an undelivered event we lacked: stored and queued


class Item(BaseModel):
    """One difference; built by the pass, or read from its `reconciliation_items` row."""

    model_config = ConfigDict(from_attributes=True, validate_by_name=True, frozen=True)

    kind: str = Field(description="`drift`, `adopted`, `missing_in_stripe` or `missed_event`.")
    object_id: str = Field(description="The Stripe subscription (or event) id.")
    customer_id: str | None = Field(validation_alias="stripe_customer_id")
    field: str = Field(description="The drifted field, or `subscription` / `event`.")
    local_value: Any
    stripe_value: Any
    fixed: bool
    reason: str | None = Field(description="How it was fixed, or why not.")


class RunReport(BaseModel):
    """What a run found and how far it got; `run_id` None for a dry run."""

    model_config = ConfigDict(from_attributes=True, validate_by_name=True)

    run_id: int | None = Field(validation_alias="id")
    status: str
    checked: int = Field(default=0, description="Subscriptions compared.")
    drifted: int = Field(
        default=0, description="Subscriptions that differed (adopted ones included)."
    )
    fixed: int = 0
    phase: str = Field(
        default="queued", description="Where the run is, or where a failed run stopped."
    )
    last_subscription_id: str | None = None
    error: str | None = None
    missed_events: str | None = Field(
        default=None,
        description="The catch-up of undelivered events: `done`, `unsupported` or `failed`.",
    )
    missed_events_detail: str | None = None
    items: list[Item] = Field(default_factory=list)

    @classmethod
    def of_run(cls, run: ReconciliationRun, items: Sequence[ReconciliationItem]) -> Self:
        """A stored run's report, from its row and its items' rows."""
        report = cls.model_validate(run)
        report.items = [Item.model_validate(item) for item in items]
        return report


class Report(RunReport):
    """A pass's report, a dry one's included."""

    dry_run: bool = False
