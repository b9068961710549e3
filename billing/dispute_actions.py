"""The admin's answers to a dispute: stage or submit text evidence, or concede. Stripe's
answer is stored through `billing.disputes.apply_dispute`, the same rules as the webhooks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import stripe
from sqlalchemy.orm import Session

from billing import evidence
from billing.context import BillingContext
from billing.disputes import CLOSED_STATUSES, apply_dispute
from db.disputes import DisputeCause, find_dispute
from db.models import Dispute


class DisputeNotFound(LookupError):
    pass


class DisputeClosed(Exception):
    pass


class SmartDisputesInCharge(Exception):
    """Stripe's Smart Disputes has submitted, or intends to submit, this dispute's evidence."""


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


def evidence_draft(session: Session, ctx: BillingContext, *, dispute_id: str) -> dict[str, Any]:
    """What `submit_draft` would send, with Visa CE 3.0's verdict and Smart Disputes' part."""
    row = find_dispute(session, dispute_id=dispute_id)
    if row is None:
        raise DisputeNotFound(f"No dispute {dispute_id}.")
    return evidence.evidence_draft(session, ctx, row)


def submit_draft(session: Session, ctx: BillingContext, *, dispute_id: str) -> Dispute:
    """Submit the draft with `Dispute.modify`, with Visa CE 3.0's `enhanced_evidence` when the
    dispute qualifies. Refused while Smart Disputes is in charge or once it is closed."""
    row = find_dispute(session, dispute_id=dispute_id)
    if row is None:
        raise DisputeNotFound(f"No dispute {dispute_id}.")
    if row.status in CLOSED_STATUSES:
        raise DisputeClosed(f"Dispute {dispute_id} is already closed ({row.status}).")
    if evidence.smart_disputes_in_charge(row):
        raise SmartDisputesInCharge(
            f"Smart Disputes has submitted or will submit dispute {dispute_id} "
            f"(submission_method {row.submission_method}, intended "
            f"{row.intended_submission_method}); submitting too would overwrite it."
        )
    verdict = evidence.visa_ce3(session, row)
    fields: dict[str, Any] = dict(evidence.text_evidence(session, ctx, row, verdict.disputed))
    if verdict.eligible:
        product = fields.get("product_description") or ctx.settings.product_name
        fields["enhanced_evidence"] = evidence.enhanced_evidence(row, verdict, product)
    return _act(
        session,
        ctx,
        dispute_id,
        lambda client: client.v1.disputes.update(
            dispute_id,
            params={"evidence": fields, "submit": True},  # type: ignore[typeddict-item]
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
