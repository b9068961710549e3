"""The pass over Stripe's subscriptions: list, compare, hand the drift to `repairs`.

A run streams `Subscription.list(status=all)` 100 a page (see `listing`). For each page it
reads the local copies in one query and compares them in memory; only a drifted or unknown
subscription opens a transaction of its own (see `repairs`). Then the local copies Stripe did
not list are asked for one by one: gone ones are marked `missing_in_stripe_since` and
reported, never deleted.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import sentry_sdk
import stripe
from sqlalchemy.orm import Session

from core.sentry import REPORTED
from core.stripe_objects import StripeDict
from db import reconciliation as records
from db.locks import lock_customer
from db.models import RunStatus
from db.session import transaction
from db.subscriptions import SubscriptionState
from tasks.events.processing import describe
from tasks.reconciliation.drift import differences
from tasks.reconciliation.listing import list_pages
from tasks.reconciliation.missed_events import catch_up_missed_events
from tasks.reconciliation.recording import Recorder
from tasks.reconciliation.repairs import Repairs

log = logging.getLogger(__name__)

UNLISTED_BATCH = 500


class Pass:
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
        self.recorder = Recorder(run_id=run_id)
        self.repairs = Repairs(client=client, recorder=self.recorder)
        self.report = self.recorder.report

    def run(self) -> None:
        self._enter("missed_events")
        self.recorder.record_catch_up(catch_up_missed_events(client=self.client, dry_run=self.dry))
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
        run_id = self.recorder.stored_run_id
        with transaction() as session:
            self.recorder.save_progress_in(session)
            records.finish_run(session, run_id=run_id, status=RunStatus.SUCCEEDED, error=None)
        report = self.report
        if report.drifted:
            # One warning per run, whatever the drift; the run's items say what.
            with sentry_sdk.new_scope() as scope:
                scope.set_tag("reconciliation_run_id", str(run_id))
                sentry_sdk.capture_message(
                    f"Reconciliation run {run_id}: {report.drifted} subscriptions drifted "
                    f"from Stripe, {report.fixed} fixed (of {report.checked} checked)",
                    "warning",
                )
        log.info(
            "reconciliation run %s: checked %d, drifted %d, fixed %d",
            run_id,
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
        # Captured just below with its traceback; the logging integration would send it twice.
        log.error("reconciliation run %s failed: %s", self.run_id, report.error, extra=REPORTED)
        sentry_sdk.capture_exception(exc)
        if self.dry:
            return
        with transaction() as session:
            self.recorder.save_progress_in(session)
            records.finish_run(
                session,
                run_id=self.recorder.stored_run_id,
                status=RunStatus.FAILED,
                error=report.error,
            )

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
                self.repairs.adopt(state, listed=listed, listed_at=listed_at)
            elif found := differences(copy, state):
                self.repairs.repair(state, found)
        self.report.last_subscription_id = ids[-1]
        self._save_progress()

    def _check_unlisted(self, subscription_id: str) -> None:
        """A local copy Stripe did not list: ask for it. Gone, it is marked and reported;
        there after all (created while we listed), it is compared like the others."""
        self.report.checked += 1
        subscription = self.repairs.fetch_subscription(subscription_id)
        if subscription is not None:
            state = SubscriptionState.from_stripe(subscription)
            copy = records.local_state(self.scan, subscription_id=subscription_id)
            self.scan.commit()
            if copy is not None and (found := differences(copy, state)):
                self.repairs.repair(state, found)
            return
        self.report.drifted += 1
        if self.dry:
            copy = records.local_state(self.scan, subscription_id=subscription_id)
            self.recorder.note_missing(
                copy, subscription_id, reason="dry run: would be marked missing"
            )
            return
        with transaction() as session:
            copy = records.local_state(session, subscription_id=subscription_id)
            if copy is not None:
                lock_customer(session, copy.customer_id)
                records.mark_missing(session, subscription_id=subscription_id)
            self.recorder.note_missing(
                copy,
                subscription_id,
                session=session,
                reason="Stripe no longer has it: marked missing_in_stripe_since, not deleted",
            )

    def _enter(self, phase: str) -> None:
        self.report.phase = phase
        self._save_progress()

    def _save_progress(self) -> None:
        if not self.dry:
            self.recorder.save_progress_in(self.scan)
        self.scan.commit()
