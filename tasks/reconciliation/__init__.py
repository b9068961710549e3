"""The nightly reconciliation: compare every Stripe subscription with the local copy, repair
the drift that no webhook reported, and keep a report of it (`run`, `scan`, `repairs`,
`recording`, `drift`, `missed_events`; the Celery task is in `task`; the report's shape, which
the admin API shares, is `db.reconciliation_report`)."""
