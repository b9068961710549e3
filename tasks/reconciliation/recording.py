"""Record keeping for a pass: a dry pass keeps what it found in its report; a real pass
stores it on its run (progress, items, the missed-events outcome)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from db import reconciliation as records
from db.models import RunStatus
from db.reconciliation import LocalState
from db.reconciliation_report import Item, ItemKind, Report
from db.session import transaction
from db.subscriptions import SubscriptionState
from tasks.reconciliation.drift import Difference
from tasks.reconciliation.missed_events import CatchUp


class Recorder:
    """Keeps a pass's report; a real pass (`run_id`) also writes it to the run's rows."""

    def __init__(self, *, run_id: int | None) -> None:
        self.run_id = run_id
        self.dry = run_id is None
        self.report = Report(run_id=run_id, status=RunStatus.RUNNING, dry_run=self.dry)

    @property
    def stored_run_id(self) -> int:
        """The run's id, which only a real pass has."""
        assert self.run_id is not None
        return self.run_id

    def save_progress_in(self, session: Session) -> None:
        report = self.report
        records.record_progress(
            session,
            run_id=self.stored_run_id,
            phase=report.phase,
            checked=report.checked,
            drifted=report.drifted,
            fixed=report.fixed,
            last_subscription_id=report.last_subscription_id,
        )

    def record_catch_up(self, catch_up: CatchUp) -> None:
        self.report.missed_events = catch_up.outcome
        self.report.missed_events_detail = catch_up.detail
        items = [
            Item(
                kind=ItemKind.MISSED_EVENT,
                object_id=event_id,
                customer_id=None,
                field="event",
                local_value=None,
                stripe_value=event_type,
                fixed=not self.dry,
                reason="dry run" if self.dry else "not delivered: stored and queued",
            )
            for event_id, event_type in catch_up.missed
        ]
        if self.dry:
            self.report.items += items
            return
        with transaction() as session:
            records.record_missed_events(
                session, run_id=self.stored_run_id, outcome=catch_up.outcome, detail=catch_up.detail
            )
            for item in items:
                self._store_item(session, item)

    def note_difference(
        self,
        state: SubscriptionState,
        difference: Difference,
        *,
        fixed: bool,
        reason: str,
        session: Session | None = None,
    ) -> None:
        self.note(
            kind=ItemKind.DRIFT,
            state=state,
            field_name=difference.field,
            local_value=difference.local,
            stripe_value=difference.stripe,
            fixed=fixed,
            reason=reason,
            session=session,
        )

    def note_missing(
        self,
        copy: LocalState | None,
        subscription_id: str,
        *,
        reason: str,
        session: Session | None = None,
    ) -> None:
        item = Item(
            kind=ItemKind.MISSING_IN_STRIPE,
            object_id=subscription_id,
            customer_id=copy.customer_id if copy else None,
            field="subscription",
            local_value={"status": copy.status, "plan": copy.price_id} if copy else None,
            stripe_value=None,
            fixed=False,
            reason=reason,
        )
        self._keep(item, session)

    def note(
        self,
        *,
        kind: ItemKind,
        state: SubscriptionState,
        field_name: str,
        local_value: Any,
        stripe_value: Any,
        fixed: bool,
        reason: str,
        session: Session | None = None,
    ) -> None:
        item = Item(
            kind=kind,
            object_id=state.stripe_subscription_id,
            customer_id=state.customer_id,
            field=field_name,
            local_value=local_value,
            stripe_value=stripe_value,
            fixed=fixed,
            reason=reason,
        )
        self._keep(item, session)

    def _keep(self, item: Item, session: Session | None) -> None:
        if self.dry or session is None:
            self.report.items.append(item)
        else:
            self._store_item(session, item)

    def _store_item(self, session: Session, item: Item) -> None:
        records.add_item(
            session,
            run_id=self.stored_run_id,
            kind=item.kind,
            object_id=item.object_id,
            customer_id=item.customer_id,
            field=item.field,
            local_value=item.local_value,
            stripe_value=item.stripe_value,
            fixed=item.fixed,
            reason=item.reason,
        )
