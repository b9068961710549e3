"""Stories of the lifecycle events: trials, pauses, unpaid and partly paid invoices, failed
and abandoned Checkouts, a deleted customer. Each reuses the objects of the other stories,
changed the way Stripe changes them for that event."""

from __future__ import annotations

from cli.sample_events.checkout import pack_checkout, subscription_checkout
from cli.sample_events.customers import customer
from cli.sample_events.events import Step
from cli.sample_events.ids import DAY, checkout_session_id, stripe_id, token
from cli.sample_events.invoices import invoice
from cli.sample_events.story import Payment, Story, StripeDict, SubscriptionIds
from cli.sample_events.subscriptions import subscription
from core.plans import CreditPack

TRIAL_DAYS = 14


def _trialing(story: Story, ids: SubscriptionIds) -> StripeDict:
    trialing = subscription(story, ids, story.starter, status="trialing")
    trialing.update(trial_start=story.now - (TRIAL_DAYS - 3) * DAY, trial_end=story.now + 3 * DAY)
    return trialing


def trial_will_end(story: Story) -> list[Step]:
    """A starter trial with three days left: the `trial_ending` email."""
    ids = SubscriptionIds.new()
    trialing = _trialing(story, ids)
    return [
        Step("customer.subscription.created", trialing),
        Step("customer.subscription.trial_will_end", trialing),
    ]


def subscription_paused(story: Story) -> list[Step]:
    """A trial that ended without a payment method pauses: no plan, the `subscription_paused`
    email."""
    ids = SubscriptionIds.new()
    paused = subscription(story, ids, story.starter, status="paused")
    return [
        Step("customer.subscription.created", _trialing(story, ids)),
        Step("customer.subscription.paused", paused),
    ]


def subscription_resumed(story: Story) -> list[Step]:
    """The paused subscription resumed: the plan is back, the `subscription_resumed` email."""
    ids = SubscriptionIds.new()
    return [
        Step("customer.subscription.created", _trialing(story, ids)),
        Step(
            "customer.subscription.paused", subscription(story, ids, story.starter, status="paused")
        ),
        Step(
            "customer.subscription.resumed",
            subscription(story, ids, story.starter),
            by_request=True,
        ),
    ]


def _open_renewal(story: Story, ids: SubscriptionIds) -> StripeDict:
    return invoice(
        story,
        ids,
        story.starter,
        invoice_id=stripe_id("in"),
        billing_reason="subscription_cycle",
        paid=False,
    )


def _subscribed(story: Story, ids: SubscriptionIds) -> list[Step]:
    return [Step("customer.subscription.created", subscription(story, ids, story.starter))]


def invoice_finalized(story: Story) -> list[Step]:
    """A renewal invoice finalized, before its payment: stored."""
    ids = SubscriptionIds.new()
    renewal = _open_renewal(story, ids)
    renewal.update(attempt_count=0, attempted=False, next_payment_attempt=story.now + 3600)
    return [*_subscribed(story, ids), Step("invoice.finalized", renewal)]


def invoice_payment_action_required(story: Story) -> list[Step]:
    """A renewal whose bank asks for 3-D Secure: the `payment_action_required` email."""
    ids = SubscriptionIds.new()
    return [
        *_subscribed(story, ids),
        Step("invoice.payment_action_required", _open_renewal(story, ids)),
    ]


def invoice_upcoming(story: Story) -> list[Step]:
    """The starter plan's renewal in three days (monthly: a notice only with
    RENEWAL_NOTICE_MONTHLY=true). An upcoming invoice has no id yet."""
    ids = SubscriptionIds.new()
    upcoming = _open_renewal(story, ids)
    del upcoming["id"]
    upcoming.update(
        status="draft",
        number=None,
        hosted_invoice_url=None,
        invoice_pdf=None,
        attempt_count=0,
        attempted=False,
        next_payment_attempt=story.now + 3 * DAY,
    )
    return [*_subscribed(story, ids), Step("invoice.upcoming", upcoming)]


def invoice_payment_paid(story: Story) -> list[Step]:
    """A renewal paid in two parts: the invoice grants its credits when the second arrives."""
    ids = SubscriptionIds.new()
    renewal = _open_renewal(story, ids)
    first, second = renewal["amount_due"] // 2, renewal["amount_due"] - renewal["amount_due"] // 2
    return [
        *_subscribed(story, ids),
        Step("invoice.finalized", renewal),
        Step("invoice_payment.paid", _part(story, renewal, first)),
        Step("invoice_payment.paid", _part(story, renewal, second)),
    ]


def _part(story: Story, paid_invoice: StripeDict, amount: int) -> StripeDict:
    return {
        "id": f"inpay_{token(24)}",
        "object": "invoice_payment",
        "amount_paid": amount,
        "amount_requested": amount,
        "created": story.now,
        "currency": paid_invoice["currency"],
        "invoice": paid_invoice["id"],
        "is_default": False,
        "livemode": False,
        "payment": {"payment_intent": stripe_id("pi"), "type": "payment_intent"},
        "status": "paid",
        "status_transitions": {"canceled_at": None, "paid_at": story.now},
    }


def checkout_async_payment_failed(story: Story, pack: CreditPack) -> list[Step]:
    """A credit pack paid by bank debit that bounced: nothing granted, `payment_failed`."""
    payment = Payment(
        checkout_session=checkout_session_id(),
        payment_intent=stripe_id("pi"),
        charge=stripe_id("ch"),
        amount=pack.amount,
        currency=pack.currency,
    )
    unpaid = pack_checkout(story, pack, payment, paid=False, delayed=True)
    return [
        Step("checkout.session.completed", unpaid),
        Step("checkout.session.async_payment_failed", unpaid),
    ]


def checkout_expired(story: Story) -> list[Step]:
    """A starter-plan Checkout left open until it expired, its customer having agreed to
    promotional email: stored and counted (a recovery email with CHECKOUT_RECOVERY_EMAILS)."""
    ids = SubscriptionIds.new()
    expired = subscription_checkout(story, ids, story.starter)
    expired.update(
        status="expired",
        payment_status="unpaid",
        subscription=None,
        invoice=None,
        url=None,
        consent={"promotions": "opt_in", "terms_of_service": None},
        consent_collection={
            "payment_method_reuse_agreement": None,
            "promotions": "auto",
            "terms_of_service": "none",
        },
        after_expiration={
            "recovery": {
                "allow_promotion_codes": False,
                "enabled": True,
                "expires_at": story.now + 30 * DAY,
                "url": f"https://buy.stripe.com/r/test_{token(24)}",
            }
        },
    )
    return [Step("checkout.session.expired", expired)]


def customer_deleted(story: Story) -> list[Step]:
    """The customer deleted in the Dashboard: the account marked deleted, its user unlinked."""
    return [Step("customer.deleted", customer(story), by_request=True)]
