"""Realistic Stripe events for `billing trigger`, shaped like API version 2025-09-30.clover.

Like `stripe trigger`, one trigger is a short story, not a lone event: the events Stripe sends
before the named one come first, because the handlers work from the event alone while no
Stripe key is set, and would otherwise have nothing to act on:

- a new customer's `customer.created` (its email and `metadata.user_id`), unless `--customer`
  names one the platform has met;
- the subscription an upgrade or a cancellation changes, and, for a new customer, the one its
  invoices belong to, so the account shows a plan; an upgrade's paid proration invoice, since
  only a paid upgrade grants credits;
- the credit-pack purchase (a Checkout in payment mode) that a refund or a dispute is about,
  since only a payment the ledger knows can give credits back or have them held.

The named event is always the last one. Every id is new on each call; only the customer can be
given, and its email and user id follow from it, so several triggers tell one customer's story.
Each event's `created` is a second after the previous one, as Stripe's would be, so the
ordering guards see them in story order whatever order a worker handles them in.

The package builds them by concern: `ids` (ids and the calendar), `story` (what one trigger's
objects share), `prices`, `customers`, `subscriptions`, `invoices` and `invoice_lines`,
`checkout`, `charges`, `disputes`, `events` (the envelope) and `stories` (which events each
type sends). Only what other modules use is exported here.
"""

from cli.sample_events.customers import customer
from cli.sample_events.events import API_VERSION, Step, event
from cli.sample_events.ids import customer_id, one_month_later
from cli.sample_events.invoice_lines import proration_line, set_line_price
from cli.sample_events.prices import placeholder_price
from cli.sample_events.stories import BUILDERS, SampleError, build_events, supported_types
from cli.sample_events.story import Story, SubscriptionIds, email_of, updated_email_of
from cli.sample_events.subscriptions import subscription

__all__ = [
    "API_VERSION",
    "BUILDERS",
    "SampleError",
    "Step",
    "Story",
    "SubscriptionIds",
    "build_events",
    "customer",
    "customer_id",
    "email_of",
    "event",
    "one_month_later",
    "placeholder_price",
    "proration_line",
    "set_line_price",
    "subscription",
    "supported_types",
    "updated_email_of",
]
