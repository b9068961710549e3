"""Subscription invoices: a period's invoice, paid or not, and an upgrade's proration."""

from __future__ import annotations

import secrets

from cli.sample_events.ids import DAY, token
from cli.sample_events.invoice_lines import line_list, proration_line, subscription_line
from cli.sample_events.prices import PlanPrice
from cli.sample_events.story import Story, StripeDict, SubscriptionIds

_ACCOUNT_URL_PATH = "acct_1TriggerAcct00001"


def invoice(
    story: Story,
    ids: SubscriptionIds,
    plan: PlanPrice,
    *,
    invoice_id: str,
    billing_reason: str,
    paid: bool = True,
) -> StripeDict:
    """A subscription invoice. The newest shape names neither its payment intent nor its
    charge (`payments` must be expanded, which webhooks never are)."""
    first = billing_reason == "subscription_create"
    url_token = token(40)
    number = f"{story.invoice_prefix}-{secrets.randbelow(9000) + 1000}"
    return {
        **_invoice_charge(story, plan, invoice_id, billing_reason=billing_reason, paid=paid),
        "hosted_invoice_url": f"https://invoice.stripe.com/i/{_ACCOUNT_URL_PATH}/test_{url_token}",
        "invoice_pdf": f"https://pay.stripe.com/invoice/{_ACCOUNT_URL_PATH}/test_{url_token}/pdf",
        "lines": line_list(
            invoice_id, [subscription_line(story, ids, plan, invoice_id=invoice_id)]
        ),
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": None if paid else story.now + 3 * DAY,
        "number": number,
        "parent": _subscription_parent(story, ids),
        **_period_and_status(story, first=first, paid=paid),
        "subtotal": plan.amount,
        "total": plan.amount,
        "total_taxes": [],
        "webhooks_delivered_at": story.now - 4,
    }


def _invoice_charge(
    story: Story, plan: PlanPrice, invoice_id: str, *, billing_reason: str, paid: bool
) -> StripeDict:
    """Who owes what and how it is collected: the card on file, charged once."""
    return {
        "id": invoice_id,
        "object": "invoice",
        "account_country": "US",
        "account_name": "Example SaaS",
        "amount_due": plan.amount,
        "amount_overpaid": 0,
        "amount_paid": plan.amount if paid else 0,
        "amount_remaining": 0 if paid else plan.amount,
        "attempt_count": 1,
        "attempted": True,
        "auto_advance": not paid,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_reason": billing_reason,
        "collection_method": "charge_automatically",
        "created": story.now - 4,
        "currency": "usd",
        "customer": story.customer,
        "customer_address": None,
        "customer_email": story.email,
        "customer_name": "Jenny Rosen",
        "customer_phone": None,
        "default_payment_method": None,
        "description": None,
        "discounts": [],
        "due_date": None,
        "effective_at": story.now - 4,
        "ending_balance": 0,
    }


def _subscription_parent(story: Story, ids: SubscriptionIds) -> StripeDict:
    return {
        "quote_details": None,
        "subscription_details": {
            "metadata": {"user_id": story.user_id},
            "subscription": ids.subscription,
        },
        "type": "subscription_details",
    }


def _period_and_status(story: Story, *, first: bool, paid: bool) -> StripeDict:
    # The invoice's own period is the one before (none for a first invoice); the line holds
    # the service period.
    return {
        "period_end": story.now - 4 if first else story.now,
        "period_start": story.now - 4 if first else story.now - 30 * DAY,
        "status": "paid" if paid else "open",
        "status_transitions": {
            "finalized_at": story.now - 4,
            "marked_uncollectible_at": None,
            "paid_at": story.now - 2 if paid else None,
            "voided_at": None,
        },
    }


def proration_invoice(
    story: Story, ids: SubscriptionIds, old: PlanPrice, new: PlanPrice
) -> StripeDict:
    """The invoice of a change's proration, charged at once (`always_invoice`): the time left
    on the new plan less the unused time on the old one, here a whole period's of each."""
    paid = invoice(
        story, ids, new, invoice_id=ids.latest_invoice, billing_reason="subscription_update"
    )
    template = paid["lines"]["data"][0]
    lines = [
        proration_line(
            template,
            price_id=old.price_id,
            amount=-old.amount,
            description=f"Unused time on {old.name}",
            unit_amount=old.amount,
        ),
        proration_line(
            template,
            price_id=new.price_id,
            amount=new.amount,
            description=f"Remaining time on {new.name}",
            unit_amount=new.amount,
        ),
    ]
    net = max(new.amount - old.amount, 0)
    paid["lines"].update(data=lines, total_count=len(lines))
    paid.update(amount_due=net, amount_paid=net, subtotal=net, total=net)
    return paid
