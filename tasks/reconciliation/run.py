"""One reconciliation run: list every Stripe subscription, compare, repair, record.

A run streams `Subscription.list(status=all)` 100 a page (see `listing`). For each page it
reads the local copies in one query and compares them in memory; only a drifted or unknown
subscription opens a transaction of its own, which takes the customer's lock (as the event
handlers do), fetches the subscription again (Stripe's state now, so a webhook applied
meanwhile is not undone) and writes it through `apply_stripe_subscription` with the
reconciliation as the cause: the ordering guard, the history, the ledger and the emails are
the handlers'. Then the local copies Stripe did not list are asked for one by one: gone ones
are marked `missing_in_stripe_since` and reported, never deleted.

One run at a time: starting takes a transaction lock and finds any `running` row; doing a run
holds a session-level advisory lock on a connection of its own for its whole length, so a
second worker given the same run does nothing. The ids Stripe listed go to a temporary table
on that connection, so memory stays flat whatever the count; closing the connection for good
at the end drops the lock and the table with it.

A dry run compares and reports the same way but writes nothing: no run row, no item, no
repair, no mark, no event stored (its temporary table dies with its connection).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import sentry_sdk
import stripe
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.stripe_objects import StripeDict, timestamp
from db import reconciliation as records
from db.accounts import find_account
from db.locks import lock_customer
from db.models import Account, ReconciliationItem, ReconciliationRun, RunStatus
from db.reconciliation import LocalState
from db.session import get_engine, transaction
from db.subscriptions import Cause, SubscriptionState, SyncResult
from tasks.events.handlers.common import adopt_customer, retrieve_or_none
from tasks.events.handlers.subscriptions import (
    apply_stripe_subscription,
    notify_canceled,
    plan_change,
)
from tasks.events.processing import describe
from tasks.reconciliation.drift import Difference, differences
from tasks.reconciliation.listing import list_pages
from tasks.reconciliation.missed_events import LOOKBACK, CatchUp, catch_up_missed_events

log = logging.getLogger(__name__)

UNLISTED_BATCH = 500
# How long a process handed a run waits for the run lock: a finished run's connection lets go
# of it within milliseconds; a run still going holds it for minutes.
EXECUTION_LOCK_WAIT_SECONDS = 10
# A `running` run nobody has touched for this long lost its process (pages take a second).
RUN_STALE_AFTER = timedelta(minutes=10)


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


def _ended_recently(subscription: StripeDict) -> bool:
    """Whether a cancellation is news: it ended within the window Stripe still retries
    webhooks in. A customer is not told months later of an end the platform missed."""
    ended = timestamp(subscription.get("ended_at")) or timestamp(subscription.get("canceled_at"))
    return ended is None or datetime.now(UTC) - ended <= LOOKBACK


# --- Starting, doing, reading a run -----------------------------------------------------------


def start_run(*, trigger: str) -> tuple[int, bool]:
    """Open a run, or find the one going; (run id, created)."""
    with transaction() as session:
        run, created = records.start_run(session, trigger=trigger, stale_after=RUN_STALE_AFTER)
        return run.id, created


def execute_run(*, run_id: int, client: stripe.StripeClient) -> RunStatus | None:
    """Do a started run to its end; None when another process is doing it, or it is over.

    A run whose process died (the lock went with its connection) is done again from the
    start by the next process handed it: its items are unique per run, so nothing doubles."""
    with _scan_session() as scan:
        if not records.hold_execution(scan, wait_seconds=EXECUTION_LOCK_WAIT_SECONDS):
            log.info("reconciliation run %s: another process is doing it", run_id)
            return None
        scan.commit()
        try:
            return _execute_held(scan, run_id=run_id, client=client)
        finally:
            scan.rollback()
            records.release_execution(scan)
            scan.commit()


def _execute_held(scan: Session, *, run_id: int, client: stripe.StripeClient) -> RunStatus | None:
    run = records.find_run(scan, run_id=run_id)
    if run is None or run.status != RunStatus.RUNNING:
        return None
    records.create_listed_table(scan)
    reconciliation = _Pass(scan=scan, client=client, run_id=run_id, listed_before=run.started_at)
    scan.commit()
    try:
        reconciliation.run()
    except BaseException as exc:
        # Ctrl-C, a time limit, a lost database: the run says where it stopped.
        scan.rollback()
        reconciliation.fail(exc)
        if not isinstance(exc, Exception):
            raise
        return RunStatus.FAILED
    reconciliation.succeed()
    return RunStatus.SUCCEEDED


def reconcile(*, client: stripe.StripeClient, trigger: str) -> tuple[int, RunStatus | None]:
    """Start a run and do it here; when one is going already, its id, and this process does
    it only if its own process died (None otherwise)."""
    run_id, _ = start_run(trigger=trigger)
    return run_id, execute_run(run_id=run_id, client=client)


def dry_run(*, client: stripe.StripeClient) -> Report:
    """Compare and report without writing anything."""
    with _scan_session() as scan:
        records.create_listed_table(scan)
        listed_before = scan.scalar(select(func.now()))
        assert listed_before is not None
        reconciliation = _Pass(scan=scan, client=client, run_id=None, listed_before=listed_before)
        try:
            reconciliation.run()
        except Exception as exc:
            reconciliation.fail(exc)
        else:
            reconciliation.succeed()
        return reconciliation.report


def load_report(*, run_id: int) -> Report | None:
    with transaction() as session:
        run = records.find_run(session, run_id=run_id)
        if run is None:
            return None
        return report_of(run, items=records.run_items(session, run_id=run_id))


def report_of(run: ReconciliationRun, *, items: Sequence[ReconciliationItem]) -> Report:
    return Report(
        run_id=run.id,
        status=run.status,
        dry_run=False,
        checked=run.checked,
        drifted=run.drifted,
        fixed=run.fixed,
        phase=run.phase,
        last_subscription_id=run.last_subscription_id,
        error=run.error,
        missed_events=run.missed_events,
        missed_events_detail=run.missed_events_detail,
        items=[
            Item(
                kind=i.kind,
                object_id=i.object_id,
                customer_id=i.stripe_customer_id,
                field=i.field,
                local_value=i.local_value,
                stripe_value=i.stripe_value,
                fixed=i.fixed,
                reason=i.reason,
            )
            for i in items
        ],
    )


@contextmanager
def _scan_session() -> Iterator[Session]:
    """A session on a connection of the run's own, closed for good afterwards: the run lock
    and the temporary table end with it instead of going back to the pool."""
    connection = get_engine().connect()
    try:
        with Session(bind=connection) as session:
            yield session
    finally:
        connection.invalidate()
        connection.close()


# --- The pass itself --------------------------------------------------------------------------


class _Pass:
    """One pass over Stripe's subscriptions. A real pass (`run_id`) repairs and records as it
    goes; a dry pass (`run_id` None) only collects its report."""

    def __init__(
        self,
        *,
        scan: Session,
        client: stripe.StripeClient,
        run_id: int | None,
        listed_before: datetime,
    ) -> None:
        self.scan, self.client, self.run_id = scan, client, run_id
        self.listed_before = listed_before
        self.dry = run_id is None
        self.report = Report(run_id=run_id, status=RunStatus.RUNNING, dry_run=self.dry)

    def run(self) -> None:
        self._enter("missed_events")
        self._record_catch_up(catch_up_missed_events(client=self.client, dry_run=self.dry))
        self._enter("listing")
        # `status=all`: canceled and ended subscriptions too, which the default list leaves out.
        pages = list_pages(self.client, "/v1/subscriptions", {"status": "all"})
        while True:
            # Stripe's state in a page is at least as new as the moment it was asked for. One
            # second less: an event Stripe makes in that same second, after serving the
            # page, has the newer state, and equal times apply.
            listed_at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
            page = next(pages, None)
            if page is None:
                break
            self._compare_page(page, listed_at=listed_at)
        self._enter("unlisted")
        after_id = 0
        while batch := records.unlisted_subscriptions(
            self.scan, after_id=after_id, listed_before=self.listed_before, limit=UNLISTED_BATCH
        ):
            self.scan.commit()
            for _, subscription_id in batch:
                self._check_unlisted(subscription_id)
            after_id = batch[-1][0]
            self._save_progress()
        self._enter("done")

    def succeed(self) -> None:
        self.report.status = RunStatus.SUCCEEDED
        if self.dry:
            return
        with transaction() as session:
            self._save_progress_in(session)
            records.finish_run(session, run_id=self._id, status=RunStatus.SUCCEEDED, error=None)
        report = self.report
        if report.drifted:
            # One warning per run, whatever the drift; the run's items say what.
            with sentry_sdk.new_scope() as scope:
                scope.set_tag("reconciliation_run_id", str(self._id))
                sentry_sdk.capture_message(
                    f"Reconciliation run {self._id}: {report.drifted} subscriptions drifted "
                    f"from Stripe, {report.fixed} fixed (of {report.checked} checked)",
                    "warning",
                )
        log.info(
            "reconciliation run %s: checked %d, drifted %d, fixed %d",
            self._id,
            report.checked,
            report.drifted,
            report.fixed,
        )

    def fail(self, exc: BaseException) -> None:
        report = self.report
        report.status = RunStatus.FAILED
        report.error = (
            f"stopped in phase {report.phase} after {report.checked} subscriptions"
            f" (last: {report.last_subscription_id or 'none'}): {describe(exc)}"
        )
        log.error("reconciliation run %s failed: %s", self.run_id, report.error)
        sentry_sdk.capture_exception(exc)
        if self.dry:
            return
        with transaction() as session:
            self._save_progress_in(session)
            records.finish_run(
                session, run_id=self._id, status=RunStatus.FAILED, error=report.error
            )

    # --- Listing ------------------------------------------------------------------------------

    def _compare_page(self, page: list[StripeDict], *, listed_at: datetime) -> None:
        states = [SubscriptionState.from_stripe(subscription) for subscription in page]
        ids = [state.stripe_subscription_id for state in states]
        local = records.local_states(self.scan, subscription_ids=ids)
        records.remember_listed(self.scan, subscription_ids=ids)
        # No transaction stays open across the repairs' Stripe calls: it would hold back
        # vacuum and queue a migration's lock behind the run.
        self.scan.commit()
        for listed, state in zip(page, states, strict=True):
            self.report.checked += 1
            copy = local.get(state.stripe_subscription_id)
            if copy is None:
                self._adopt(state, listed=listed, listed_at=listed_at)
            elif found := differences(copy, state):
                self._repair(state, found)
        self.report.last_subscription_id = ids[-1]
        self._save_progress()

    def _check_unlisted(self, subscription_id: str) -> None:
        """A local copy Stripe did not list: ask for it. Gone, it is marked and reported;
        there after all (created while we listed), it is compared like the others."""
        self.report.checked += 1
        subscription = self._fetch_subscription(subscription_id)
        if subscription is not None:
            state = SubscriptionState.from_stripe(subscription)
            copy = records.local_state(self.scan, subscription_id=subscription_id)
            self.scan.commit()
            if copy is not None and (found := differences(copy, state)):
                self._repair(state, found)
            return
        self.report.drifted += 1
        if self.dry:
            copy = records.local_state(self.scan, subscription_id=subscription_id)
            self._note_missing(copy, subscription_id, reason="dry run: would be marked missing")
            return
        with transaction() as session:
            copy = records.local_state(session, subscription_id=subscription_id)
            if copy is not None:
                lock_customer(session, copy.customer_id)
                records.mark_missing(session, subscription_id=subscription_id)
            self._note_missing(
                copy,
                subscription_id,
                session=session,
                reason="Stripe no longer has it: marked missing_in_stripe_since, not deleted",
            )

    # --- Repairs ------------------------------------------------------------------------------

    def _adopt(self, state: SubscriptionState, *, listed: StripeDict, listed_at: datetime) -> None:
        """A subscription we never saw: store the listed object, with its customer's account.
        No second call for it: stamped with the time its page was asked for, it is skipped by
        the ordering guard if an event stored a newer state meanwhile."""
        self.report.drifted += 1
        summary = {"status": state.status, "plan": state.price_id}
        if self.dry:
            self._note(ItemKind.ADOPTED, state, "subscription", None, summary, False, "dry run")
            return
        with transaction() as session:
            lock_customer(session, state.customer_id)
            account = self._account(session, state.customer_id, listed)
            result = apply_stripe_subscription(
                session,
                account=account,
                subscription=listed,
                as_of=listed_at,
                cause=Cause.RECONCILIATION,
            )
            # No cancellation email here: `status=all` lists subscriptions that ended long
            # ago, and a customer must not hear of an old cancellation as news.
            self._note(
                ItemKind.ADOPTED,
                state,
                "subscription",
                None,
                summary,
                result.applied,
                "adopted with its customer",
                session=session,
            )
        self.report.fixed += int(result.applied)

    def _repair(self, state: SubscriptionState, found: list[Difference]) -> None:
        """A drifted subscription: write Stripe's current state through the handlers' path."""
        self.report.drifted += 1
        if self.dry:
            for difference in found:
                self._note_difference(state, difference, fixed=False, reason="dry run")
            return
        with transaction() as session:
            lock_customer(session, state.customer_id)
            subscription = self._fetch_subscription(state.stripe_subscription_id)
            copy = records.local_state(session, subscription_id=state.stripe_subscription_id)
            if subscription is None or copy is None:
                reason = (
                    "gone from Stripe since it was listed: the next run marks it"
                    if subscription is None
                    else "the local copy disappeared since it was read"
                )
                for difference in found:
                    self._note_difference(
                        state, difference, fixed=False, reason=reason, session=session
                    )
                return
            fresh = SubscriptionState.from_stripe(subscription)
            found = differences(copy, fresh)
            if not found:  # an event repaired it between the listing and now
                self.report.drifted -= 1
                return
            account = self._account(session, fresh.customer_id, subscription)
            result = apply_stripe_subscription(
                session,
                account=account,
                subscription=subscription,
                as_of=None,
                cause=Cause.RECONCILIATION,
            )
            if result.applied:
                self._follow_up(session, account, subscription, copy, result)
            reason = (
                "repaired from Stripe's current state"
                if result.applied
                else "the local copy has ended and Stripe never revives a subscription: "
                "left for a person to look at"
            )
            for difference in found:
                self._note_difference(
                    fresh, difference, fixed=result.applied, reason=reason, session=session
                )
        self.report.fixed += int(result.applied)

    def _follow_up(
        self,
        session: Session,
        account: Account,
        subscription: StripeDict,
        copy: LocalState,
        result: SyncResult,
    ) -> None:
        """What the lost event's handler would have done besides storing the state."""
        price = SubscriptionState.from_stripe(subscription).price_id
        if copy.price_id and price and copy.price_id != price:
            # Keyed like the event's grant and email: a late event adds nothing.
            plan_change(
                session, account=account, subscription=subscription, old_price=copy.price_id
            )
        if (
            result.subscription.status == "canceled"
            and copy.status != "canceled"
            and _ended_recently(subscription)
        ):
            notify_canceled(session, account=account, result=result)

    def _account(self, session: Session, customer_id: str, subscription: StripeDict) -> Account:
        """The customer's account; a customer met for the first time is fetched with this
        (rate-limited) client and adopted from its own object."""
        if find_account(session, customer_id=customer_id) is None:
            customer = retrieve_or_none(lambda: self.client.v1.customers.retrieve(customer_id))
            if customer is not None and not customer.get("deleted"):
                return adopt_customer(session, customer_id=customer_id, source=customer, as_of=None)
        return adopt_customer(session, customer_id=customer_id, source=subscription)

    def _fetch_subscription(self, subscription_id: str) -> StripeDict | None:
        """Stripe's subscription now; None only when Stripe answers that it has no such
        subscription (404): any other refusal is an error, never a reason to mark it gone."""
        try:
            return self.client.v1.subscriptions.retrieve(subscription_id).to_dict()
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                return None
            raise

    # --- Records ------------------------------------------------------------------------------

    @property
    def _id(self) -> int:
        assert self.run_id is not None
        return self.run_id

    def _enter(self, phase: str) -> None:
        self.report.phase = phase
        self._save_progress()

    def _save_progress(self) -> None:
        if not self.dry:
            self._save_progress_in(self.scan)
        self.scan.commit()

    def _save_progress_in(self, session: Session) -> None:
        report = self.report
        records.record_progress(
            session,
            run_id=self._id,
            phase=report.phase,
            checked=report.checked,
            drifted=report.drifted,
            fixed=report.fixed,
            last_subscription_id=report.last_subscription_id,
        )

    def _record_catch_up(self, catch_up: CatchUp) -> None:
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
                session, run_id=self._id, outcome=catch_up.outcome, detail=catch_up.detail
            )
            for item in items:
                self._store_item(session, item)

    def _note_difference(
        self,
        state: SubscriptionState,
        difference: Difference,
        *,
        fixed: bool,
        reason: str,
        session: Session | None = None,
    ) -> None:
        self._note(
            ItemKind.DRIFT,
            state,
            difference.field,
            difference.local,
            difference.stripe,
            fixed,
            reason,
            session=session,
        )

    def _note_missing(
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

    def _note(
        self,
        kind: ItemKind,
        state: SubscriptionState,
        field_name: str,
        local_value: Any,
        stripe_value: Any,
        fixed: bool,
        reason: str,
        *,
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
            run_id=self._id,
            kind=item.kind,
            object_id=item.object_id,
            customer_id=item.customer_id,
            field=item.field,
            local_value=item.local_value,
            stripe_value=item.stripe_value,
            fixed=item.fixed,
            reason=item.reason,
        )
