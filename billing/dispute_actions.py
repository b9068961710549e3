"""The admin's answers to a dispute: stage or submit text evidence, or concede. Stripe's
answer is stored through `billing.disputes.apply_dispute`, the same rules as the webhooks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import stripe
from sqlalchemy.orm import Session

from billing.context import BillingContext
from billing.disputes import CLOSED_STATUSES, apply_dispute
from db.disputes import DisputeCause, find_dispute
from db.models import Dispute


class DisputeNotFound(LookupError):
    pass


class DisputeClosed(Exception):
    pass


class StripeRequired(RuntimeError):
    """The action asks Stripe, and the context has no Stripe client."""


def submit_evidence(
    session: Session,
    ctx: BillingContext,
    *,
    dispute_id: str,
    evidence: dict[str, str],
    submit: bool,
) -> Dispute:
    """Stage text evidence with `Dispute.modify`, and submit it to the bank when `submit`."""
    return _act(
        session,
        ctx,
        dispute_id,
        lambda client: client.v1.disputes.update(
            dispute_id, params={"evidence": dict(evidence), "submit": submit}
        ),
    )


def accept_dispute(session: Session, ctx: BillingContext, *, dispute_id: str) -> Dispute:
    """Concede with `Dispute.close`: the dispute is lost, and its hold stays."""
    return _act(session, ctx, dispute_id, lambda client: client.v1.disputes.close(dispute_id))


def _act(
    session: Session,
    ctx: BillingContext,
    dispute_id: str,
    call: Callable[[stripe.StripeClient], Any],
) -> Dispute:
    """Check the dispute is known and open, call Stripe, store its answer. Stripe's other
    errors are the caller's to map."""
    row = find_dispute(session, dispute_id=dispute_id)
    if row is None:
        raise DisputeNotFound(f"No dispute {dispute_id}.")
    if row.status in CLOSED_STATUSES:
        raise DisputeClosed(f"Dispute {dispute_id} is already closed ({row.status}).")
    if ctx.stripe is None:
        raise StripeRequired(f"no Stripe client to act on dispute {dispute_id}")
    try:
        answer = call(ctx.stripe).to_dict()
    except stripe.InvalidRequestError as exc:
        # Closed in Stripe before its event reached us.
        message = exc.user_message or str(exc)
        if "closed" in message.lower():
            raise DisputeClosed(message) from None
        raise
    result = apply_dispute(
        session,
        ctx,
        dispute=answer,
        as_of=None,  # Stripe's answer to our call: its state now
        cause=DisputeCause.API,
        stripe_event_id=None,
    )
    return result.dispute
