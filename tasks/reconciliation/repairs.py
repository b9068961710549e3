"""Repairs: a drifted or unknown subscription opens a transaction of its own, which takes the
customer's lock (as the event handlers do) and writes Stripe's state through
`apply_stripe_subscription` with the reconciliation as the cause: the ordering guard, the
history, the ledger and the emails are the billing rules'. A drifted one is fetched again first
(Stripe's state now, so a webhook applied meanwhile is not undone); an unknown one is stored
from its page, stamped a second before the page was asked for."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import stripe
from sqlalchemy.orm import Session

from billing.accounts import adopt_customer, fetch_customer
from billing.context import BillingContext
from billing.subscriptions import apply_stripe_subscription, notify_canceled, plan_change
from core.stripe_objects import StripeDict, timestamp
from db import reconciliation as records
from db.accounts import find_account
from db.locks import lock_customer
from db.models import Account
from db.reconciliation import LocalState
from db.reconciliation_report import ItemKind, Report
from db.session import transaction
from db.subscriptions import Cause, SubscriptionState, SyncResult
from tasks.context import worker_context
from tasks.reconciliation.drift import Difference, differences
from tasks.reconciliation.missed_events import LOOKBACK
from tasks.reconciliation.recording import Recorder


class Repairs:
    """A pass's repairs, made with its client and noted by its recorder (dry: noted only).
    The billing rules get the worker's context with this pass's (rate-limited) client."""

    def __init__(self, *, client: stripe.StripeClient, recorder: Recorder) -> None:
        self.client, self.recorder = client, recorder
        self.ctx: BillingContext = dataclasses.replace(worker_context(), stripe=client)
        self.dry = recorder.dry

    @property
    def report(self) -> Report:
        return self.recorder.report

    def adopt(self, state: SubscriptionState, *, listed: StripeDict, listed_at: datetime) -> None:
        """A subscription we never saw: store the listed object, with its customer's account.
        No second call for it: stamped with the time its page was asked for, it is skipped by
        the ordering guard if an event stored a newer state meanwhile."""
        self.report.drifted += 1
        summary = {"status": state.status, "plan": state.price_id}
        if self.dry:
            self._note_adopted(state, summary, applied=False, reason="dry run")
            return
        with transaction() as session:
            lock_customer(session, state.customer_id)
            account = self._account(session, state.customer_id, listed)
            result = apply_stripe_subscription(
                session,
                self.ctx,
                account=account,
                subscription=listed,
                as_of=listed_at,
                cause=Cause.RECONCILIATION,
            )
            # No cancellation email here: `status=all` lists subscriptions that ended long
            # ago, and a customer must not hear of an old cancellation as news.
            self._note_adopted(
                state,
                summary,
                applied=result.applied,
                reason="adopted with its customer",
                session=session,
            )
        self.report.fixed += int(result.applied)

    def repair(self, state: SubscriptionState, found: list[Difference]) -> None:
        """A drifted subscription: write Stripe's current state through the handlers' path."""
        self.report.drifted += 1
        if self.dry:
            for difference in found:
                self.recorder.note_difference(state, difference, fixed=False, reason="dry run")
            return
        with transaction() as session:
            applied = self._repair_in(session, state, found)
        self.report.fixed += int(applied)

    def fetch_subscription(self, subscription_id: str) -> StripeDict | None:
        """Stripe's subscription now; None only when Stripe answers that it has no such
        subscription (404): any other refusal is an error, never a reason to mark it gone."""
        try:
            return self.client.v1.subscriptions.retrieve(subscription_id).to_dict()
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                return None
            raise

    def _repair_in(
        self, session: Session, state: SubscriptionState, found: list[Difference]
    ) -> bool:
        """The repair's transaction, under the customer's lock; whether it was applied."""
        lock_customer(session, state.customer_id)
        subscription = self.fetch_subscription(state.stripe_subscription_id)
        copy = records.local_state(session, subscription_id=state.stripe_subscription_id)
        if subscription is None or copy is None:
            reason = (
                "gone from Stripe since it was listed: the next run marks it"
                if subscription is None
                else "the local copy disappeared since it was read"
            )
            self._note_all(session, state, found, fixed=False, reason=reason)
            return False
        fresh = SubscriptionState.from_stripe(subscription)
        found = differences(copy, fresh)
        if not found:  # an event repaired it between the listing and now
            self.report.drifted -= 1
            return False
        account = self._account(session, fresh.customer_id, subscription)
        result = apply_stripe_subscription(
            session,
            self.ctx,
            account=account,
            subscription=subscription,
            as_of=None,
            cause=Cause.RECONCILIATION,
        )
        if result.applied:
            follow_up(
                session,
                self.ctx,
                account=account,
                subscription=subscription,
                copy=copy,
                result=result,
            )
        reason = (
            "repaired from Stripe's current state"
            if result.applied
            else "the local copy has ended and Stripe never revives a subscription: "
            "left for a person to look at"
        )
        self._note_all(session, fresh, found, fixed=result.applied, reason=reason)
        return result.applied

    def _account(self, session: Session, customer_id: str, subscription: StripeDict) -> Account:
        """The customer's account; a customer met for the first time is fetched with this
        (rate-limited) client and adopted from its own object."""
        if find_account(session, customer_id=customer_id) is None:
            customer = fetch_customer(self.ctx, customer_id)
            if customer is not None and not customer.get("deleted"):
                return adopt_customer(
                    session, self.ctx, customer_id=customer_id, source=customer, as_of=None
                )
        return adopt_customer(session, self.ctx, customer_id=customer_id, source=subscription)

    def _note_adopted(
        self,
        state: SubscriptionState,
        summary: dict[str, str | None],
        *,
        applied: bool,
        reason: str,
        session: Session | None = None,
    ) -> None:
        self.recorder.note(
            kind=ItemKind.ADOPTED,
            state=state,
            field_name="subscription",
            local_value=None,
            stripe_value=summary,
            fixed=applied,
            reason=reason,
            session=session,
        )

    def _note_all(
        self,
        session: Session,
        state: SubscriptionState,
        found: list[Difference],
        *,
        fixed: bool,
        reason: str,
    ) -> None:
        for difference in found:
            self.recorder.note_difference(
                state, difference, fixed=fixed, reason=reason, session=session
            )


def follow_up(
    session: Session,
    ctx: BillingContext,
    *,
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
            session, ctx, account=account, subscription=subscription, old_price=copy.price_id
        )
    if (
        result.subscription.status == "canceled"
        and copy.status != "canceled"
        and ended_recently(subscription)
    ):
        notify_canceled(session, ctx, account=account, result=result)


def ended_recently(subscription: StripeDict) -> bool:
    """Whether a cancellation is news: it ended within the window Stripe still retries
    webhooks in. A customer is not told months later of an end the platform missed."""
    ended = timestamp(subscription.get("ended_at")) or timestamp(subscription.get("canceled_at"))
    return ended is None or datetime.now(UTC) - ended <= LOOKBACK
