"""The billing domain: every rule about money, credits and subscriptions, written once.

Celery tasks, API routes and reconciliation repairs translate their input and call these
functions; nothing here imports FastAPI or Celery. A function takes the caller's session
(the caller owns the transaction; functions here only flush) and, where it needs Stripe,
the catalogue, the settings or the time, a `BillingContext`.

`registry` lists every Stripe event type the platform reacts to and the function applying
it. The rules: `accounts` and `customers` (who the customer is), `subscriptions` (the
ordering guard) with `plan_changes` and `upgrades`, `invoices`, `checkout`, `credits`,
`refunds`, `disputes` (with `dispute_actions`, `dispute_notices`), `notices` (which email
goes to whom), `plans`, `payments`; `events` and `replay` are the stored event as the
rules see it; `context` is what they are handed.
"""
