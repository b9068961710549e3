"""The story each event type of `billing trigger` tells: the events Stripe sends before the
named one, then the named one (see the package's docstring for why)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from cli.sample_events import lifecycle
from cli.sample_events.charges import charge
from cli.sample_events.checkout import pack_checkout, subscription_checkout
from cli.sample_events.credit_notes import credit_note
from cli.sample_events.customers import customer
from cli.sample_events.disputes import dispute
from cli.sample_events.events import Step, event
from cli.sample_events.fraud import BUYER_IP, DEVICE_FINGERPRINT, early_fraud_warning
from cli.sample_events.ids import DAY, checkout_session_id, stripe_id
from cli.sample_events.invoices import invoice, proration_invoice
from cli.sample_events.prices import PlanPrice
from cli.sample_events.story import Payment, Story, StripeDict, SubscriptionIds
from cli.sample_events.subscriptions import subscription
from core.plans import CreditPack


class SampleError(Exception):
    """The event cannot be built from this configuration; the message is one sentence."""


def _pack(story: Story, event_type: str) -> CreditPack:
    if story.pack is None:
        raise SampleError(
            f"{event_type} is about a credit-pack purchase, and the plan catalogue "
            "(PLANS_FILE) has no credit pack."
        )
    return story.pack


def _new_payment(pack: CreditPack) -> Payment:
    return Payment(
        checkout_session=checkout_session_id(),
        payment_intent=stripe_id("pi"),
        charge=stripe_id("ch"),
        amount=pack.amount,
        currency=pack.currency,
    )


def _purchase(story: Story, event_type: str) -> tuple[list[Step], Payment]:
    pack = _pack(story, event_type)
    payment = _new_payment(pack)
    return [Step("checkout.session.completed", pack_checkout(story, pack, payment))], payment


def _card_purchase(
    story: Story, event_type: str, *, paid_at: int | None = None, buyer: bool = False
) -> tuple[list[Step], Payment]:
    """A pack bought by card: `charge.succeeded` (the card) then the completed Checkout, which
    with `buyer` carries the buyer's IP and device as a host application's Checkout may."""
    pack = _pack(story, event_type)
    payment = _new_payment(pack)
    checkout = pack_checkout(story, pack, payment)
    if buyer:
        checkout["metadata"] |= {"buyer_ip": BUYER_IP, "device_fingerprint": DEVICE_FINGERPRINT}
    return [
        Step("charge.succeeded", charge(story, payment, created=paid_at)),
        Step("checkout.session.completed", checkout),
    ], payment


def _customers_subscription(story: Story, plan: PlanPrice, ids: SubscriptionIds) -> list[Step]:
    """A new customer's subscription, so its invoices' account shows a plan; a customer given
    with --customer is taken to have one already."""
    if not story.new_customer:
        return []
    return [Step("customer.subscription.created", subscription(story, ids, plan))]


def customer_created(story: Story) -> list[Step]:
    return [Step("customer.created", customer(story), by_request=True)]


def customer_updated(story: Story) -> list[Step]:
    return [
        Step(
            "customer.updated",
            customer(story, email=story.updated_email),
            previous_attributes={"email": story.email},
            by_request=True,
        )
    ]


def checkout_completed(story: Story) -> list[Step]:
    """A Checkout for the starter plan, with what Stripe sends around it: the subscription it
    made and its first invoice, paid (the receipt; the credits, keyed by that invoice)."""
    ids, plan = SubscriptionIds.new(), story.starter
    first_invoice = invoice(
        story, ids, plan, invoice_id=ids.latest_invoice, billing_reason="subscription_create"
    )
    return [
        Step("customer.subscription.created", subscription(story, ids, plan)),
        Step("invoice.paid", first_invoice),
        Step("checkout.session.completed", subscription_checkout(story, ids, plan)),
    ]


def checkout_async_payment_succeeded(story: Story) -> list[Step]:
    """A credit pack paid by bank debit: the session completes unpaid, and the money arrives."""
    event_type = "checkout.session.async_payment_succeeded"
    pack = _pack(story, event_type)
    payment = _new_payment(pack)
    return [
        Step(
            "checkout.session.completed",
            pack_checkout(story, pack, payment, paid=False, delayed=True),
        ),
        Step(event_type, pack_checkout(story, pack, payment, delayed=True)),
    ]


def subscription_created(story: Story) -> list[Step]:
    ids = SubscriptionIds.new()
    return [Step("customer.subscription.created", subscription(story, ids, story.starter))]


def subscription_updated(story: Story) -> list[Step]:
    """An upgrade from starter to pro, its proration invoiced and paid at once: the period's
    credits are topped up, the customer told. The paid invoice comes first so that the named
    event is last; the platform grants the upgrade when both are known, in either order."""
    ids = SubscriptionIds.new()
    old = subscription(story, ids, story.starter)
    upgraded = replace(ids, latest_invoice=stripe_id("in"))
    return [
        Step("customer.subscription.created", old),
        Step("invoice.paid", proration_invoice(story, upgraded, story.starter, story.pro)),
        Step(
            "customer.subscription.updated",
            subscription(story, upgraded, story.pro),
            previous_attributes={"items": old["items"], "latest_invoice": ids.latest_invoice},
            by_request=True,
        ),
    ]


def subscription_deleted(story: Story) -> list[Step]:
    """A starter subscription canceled at once: back to `free`, and the goodbye email."""
    ids = SubscriptionIds.new()
    return [
        Step("customer.subscription.created", subscription(story, ids, story.starter)),
        Step(
            "customer.subscription.deleted",
            subscription(story, ids, story.starter, status="canceled"),
            by_request=True,
        ),
    ]


def _invoice_paid(event_type: str) -> Callable[[Story], list[Step]]:
    def build(story: Story) -> list[Step]:
        """A renewal of the starter plan, paid: the period's credits and a receipt."""
        ids, plan = SubscriptionIds.new(), story.starter
        renewal = invoice(
            story, ids, plan, invoice_id=stripe_id("in"), billing_reason="subscription_cycle"
        )
        return [*_customers_subscription(story, plan, ids), Step(event_type, renewal)]

    return build


def invoice_payment_failed(story: Story) -> list[Step]:
    """A renewal whose card was declined: past due (when the subscription is known here), and
    the pay-now email."""
    ids, plan = SubscriptionIds.new(), story.starter
    renewal = invoice(
        story,
        ids,
        plan,
        invoice_id=stripe_id("in"),
        billing_reason="subscription_cycle",
        paid=False,
    )
    return [*_customers_subscription(story, plan, ids), Step("invoice.payment_failed", renewal)]


def charge_refunded(story: Story) -> list[Step]:
    """A credit pack bought, then refunded in full: the credits go back."""
    steps, payment = _purchase(story, "charge.refunded")
    refunded = charge(story, payment, refunded=payment.amount)
    return [
        *steps,
        Step(
            "charge.refunded",
            refunded,
            previous_attributes={"amount_refunded": 0, "refunded": False},
            by_request=True,
        ),
    ]


def _credit_note_story(event_type: str) -> Callable[[Story], list[Step]]:
    """A paid starter renewal credited back in full to the customer's balance: the period's
    credits are taken back; `credit_note.voided` voids it again and gives them back."""

    def build(story: Story) -> list[Step]:
        ids, plan = SubscriptionIds.new(), story.starter
        invoice_id, credit_note_id = stripe_id("in"), stripe_id("cn")
        renewal = invoice(
            story, ids, plan, invoice_id=invoice_id, billing_reason="subscription_cycle"
        )
        steps = [
            *_customers_subscription(story, plan, ids),
            Step("invoice.paid", renewal),
            Step(
                "credit_note.created",
                credit_note(story, plan, credit_note_id=credit_note_id, invoice_id=invoice_id),
                by_request=event_type == "credit_note.created",
            ),
        ]
        if event_type == "credit_note.voided":
            voided = credit_note(
                story, plan, credit_note_id=credit_note_id, invoice_id=invoice_id, voided=True
            )
            steps.append(
                Step(
                    event_type,
                    voided,
                    previous_attributes={"status": "issued", "voided_at": None},
                    by_request=True,
                )
            )
        return steps

    return build


def charge_succeeded(story: Story) -> list[Step]:
    """A credit pack bought by card: the card's fingerprint, brand and network are kept."""
    steps, _ = _card_purchase(story, "charge.succeeded")
    return [steps[1], steps[0]]  # the named event last


def _fraud_warning_story(event_type: str) -> Callable[[Story], list[Step]]:
    """A credit pack bought, then reported as fraud by the card's issuer: its credits are
    held and the admins told; `updated` marks it no longer actionable."""

    def build(story: Story) -> list[Step]:
        steps, payment = _card_purchase(story, event_type)
        warning_id = stripe_id("issfr")
        steps.append(
            Step(
                "radar.early_fraud_warning.created",
                early_fraud_warning(story, payment, warning_id=warning_id),
            )
        )
        if event_type == "radar.early_fraud_warning.updated":
            done = early_fraud_warning(story, payment, warning_id=warning_id, actionable=False)
            steps.append(Step(event_type, done, previous_attributes={"actionable": True}))
        return steps

    return build


def ce3_dispute(story: Story) -> list[Step]:
    """`--story ce3`: Visa Compelling Evidence 3.0. The same card bought packs 300 and 150
    days ago and today, each from the same IP and device; today's is charged back as Visa
    10.4 card-absent fraud, which Stripe reports as CE 3.0 `qualified`."""
    steps: list[Step] = []
    for days in (300, 150):
        earlier, _ = _card_purchase(
            story, "charge.dispute.created", paid_at=story.now - days * DAY, buyer=True
        )
        steps += earlier
    latest, payment = _card_purchase(story, "charge.dispute.created", buyer=True)
    opened = dispute(story, payment, dispute_id=stripe_id("dp"), status="needs_response")
    opened["enhanced_eligibility_types"] = ["visa_compelling_evidence_3"]
    opened["evidence_details"]["enhanced_eligibility"] = {
        "visa_compelling_evidence_3": {"required_actions": [], "status": "qualified"}
    }
    return [*steps, *latest, Step("charge.dispute.created", opened)]


def _dispute_story(event_type: str) -> Callable[[Story], list[Step]]:
    """A credit pack bought, then charged back: `created` holds its credits and tells the
    admins; the later events carry on from an opened dispute to where their type says."""

    def build(story: Story) -> list[Step]:
        steps, payment = _purchase(story, event_type)
        dispute_id = stripe_id("dp")

        def opened(**kwargs: Any) -> StripeDict:
            return dispute(story, payment, dispute_id=dispute_id, status="needs_response", **kwargs)

        steps.append(Step("charge.dispute.created", opened()))
        if event_type == "charge.dispute.updated":
            answered = dispute(story, payment, dispute_id=dispute_id, status="under_review")
            steps.append(
                Step(event_type, answered, previous_attributes={"status": "needs_response"})
            )
        elif event_type == "charge.dispute.closed":
            won = dispute(story, payment, dispute_id=dispute_id, status="won", reinstated=True)
            steps.append(Step(event_type, won, previous_attributes={"status": "under_review"}))
        elif event_type == "charge.dispute.funds_withdrawn":
            steps.append(Step(event_type, opened()))
        elif event_type == "charge.dispute.funds_reinstated":
            steps.append(Step("charge.dispute.funds_withdrawn", opened()))
            won = dispute(story, payment, dispute_id=dispute_id, status="won", reinstated=True)
            steps.append(Step(event_type, won))
        return steps

    return build


def checkout_async_payment_failed(story: Story) -> list[Step]:
    pack = _pack(story, "checkout.session.async_payment_failed")
    return lifecycle.checkout_async_payment_failed(story, pack)


# Every event type `billing trigger` can send; a test keeps it equal to the handled types.
BUILDERS: dict[str, Callable[[Story], list[Step]]] = {
    "customer.created": customer_created,
    "customer.updated": customer_updated,
    "customer.deleted": lifecycle.customer_deleted,
    "checkout.session.completed": checkout_completed,
    "checkout.session.async_payment_succeeded": checkout_async_payment_succeeded,
    "checkout.session.async_payment_failed": checkout_async_payment_failed,
    "checkout.session.expired": lifecycle.checkout_expired,
    "customer.subscription.created": subscription_created,
    "customer.subscription.updated": subscription_updated,
    "customer.subscription.deleted": subscription_deleted,
    "customer.subscription.trial_will_end": lifecycle.trial_will_end,
    "customer.subscription.paused": lifecycle.subscription_paused,
    "customer.subscription.resumed": lifecycle.subscription_resumed,
    "invoice.paid": _invoice_paid("invoice.paid"),
    "invoice.payment_succeeded": _invoice_paid("invoice.payment_succeeded"),
    "invoice.payment_failed": invoice_payment_failed,
    "invoice.finalized": lifecycle.invoice_finalized,
    "invoice.payment_action_required": lifecycle.invoice_payment_action_required,
    "invoice.upcoming": lifecycle.invoice_upcoming,
    "invoice_payment.paid": lifecycle.invoice_payment_paid,
    "charge.refunded": charge_refunded,
    "credit_note.created": _credit_note_story("credit_note.created"),
    "credit_note.voided": _credit_note_story("credit_note.voided"),
    "charge.dispute.created": _dispute_story("charge.dispute.created"),
    "charge.dispute.updated": _dispute_story("charge.dispute.updated"),
    "charge.dispute.closed": _dispute_story("charge.dispute.closed"),
    "charge.dispute.funds_withdrawn": _dispute_story("charge.dispute.funds_withdrawn"),
    "charge.dispute.funds_reinstated": _dispute_story("charge.dispute.funds_reinstated"),
    "radar.early_fraud_warning.created": _fraud_warning_story("radar.early_fraud_warning.created"),
    "radar.early_fraud_warning.updated": _fraud_warning_story("radar.early_fraud_warning.updated"),
    "charge.succeeded": charge_succeeded,
}

# Other stories of one type (`billing trigger TYPE --story NAME`).
STORIES: dict[str, dict[str, Callable[[Story], list[Step]]]] = {
    "ce3": {"charge.dispute.created": ce3_dispute},
}


def supported_types() -> list[str]:
    return sorted(BUILDERS)


def build_events(event_type: str, story: Story, *, name: str | None = None) -> list[StripeDict]:
    """The events of one trigger, in the order Stripe would send them; the named one last.
    Raises KeyError for a type not in BUILDERS, SampleError when the catalogue lacks a pack
    or the story `name` is not one of that type's."""
    if name is not None:
        builder = STORIES.get(name, {}).get(event_type)
        if builder is None:
            known = ", ".join(f"{n} ({', '.join(types)})" for n, types in STORIES.items())
            raise SampleError(f"no story {name!r} of {event_type}; the stories are {known}.")
        steps = builder(story)
    else:
        steps = BUILDERS[event_type](story)
    if story.new_customer and event_type != "customer.created":
        steps = [*customer_created(story), *steps]
    last = len(steps) - 1
    return [event(step, created=story.now - (last - i)) for i, step in enumerate(steps)]
