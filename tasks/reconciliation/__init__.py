"""The nightly reconciliation: compare every Stripe subscription with the local copy, repair
the drift that no webhook reported, and keep a report of it (`run`, `scan`, `repairs`,
`recording`, `model`, `drift`, `missed_events`; the Celery task is in `task`)."""
