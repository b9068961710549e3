"""`billing.reconcile_subscriptions`: the nightly beat task (and what the admin API sends)."""

from __future__ import annotations

import logging

import stripe

from core.settings import Settings, get_settings
from core.stripe_client import make_stripe_client, stripe_unavailable_reason
from core.stripe_rate_limit import rate_limited_http_client
from core.task_names import RECONCILE_DRY_RUN, RECONCILE_SUBSCRIPTIONS
from db.models import RunStatus
from db.reconciliation import finish_run
from db.reconciliation_report import Report
from db.session import transaction
from tasks.celery_app import app
from tasks.invoice_archive import publish_archive
from tasks.reconciliation.archives import queue_missing_archives
from tasks.reconciliation.run import dry_run, execute_run, start_run

log = logging.getLogger(__name__)

TASK_NAME = RECONCILE_SUBSCRIPTIONS
# 100,000 subscriptions are 1,000 list calls plus one call per repair: 26 s at the live 80
# requests a second, 64 s at test mode's 20 (benchmarks/reconcile.py). The default task limit
# (300 s) would cut a large account short; past Redis's one-hour visibility timeout the
# message would be delivered again, so the limit stays under it.
TIME_LIMIT_SECONDS = 50 * 60


def reconciliation_client(settings: Settings) -> stripe.StripeClient | None:
    """A Stripe client paced at the configured mode's rate, backing off on 429."""
    return make_stripe_client(settings, http_client=rate_limited_http_client(settings))


@app.task(
    name=TASK_NAME,
    ignore_result=True,
    time_limit=TIME_LIMIT_SECONDS,
    soft_time_limit=TIME_LIMIT_SECONDS - 60,
)
def reconcile_subscriptions(run_id: int | None = None) -> int | None:
    """Do the run `run_id` (started by the admin API), or start one (beat); its id. A run
    already going is done here only if its process died (a redelivered message after a
    crash resumes it); otherwise this returns after waiting at most 10 s for its lock."""
    settings = get_settings()
    if run_id is None:
        # The archive needs no Stripe key: it runs even where the subscription pass cannot.
        queue_missing_archives(publish_archive)
    client = reconciliation_client(settings)
    if run_id is None:
        if client is None:  # development without a key: nothing to compare with
            log.warning("nightly reconciliation skipped: %s", stripe_unavailable_reason(settings))
            return None
        run_id, created = start_run(trigger="schedule")
        if not created:
            log.info("reconciliation run %s is already going", run_id)
    elif client is None:  # started by the admin API; it must not stay `running`
        with transaction() as session:
            finish_run(
                session,
                run_id=run_id,
                status=RunStatus.FAILED,
                error=stripe_unavailable_reason(settings),
            )
        return run_id
    execute_run(run_id=run_id, client=client)
    return run_id


# A dry run writes nothing to the database, so its report travels back as the task's result
# (kept a day in the result backend), which the console reads by the task's id.
DRY_RUN_RESULT_SECONDS = 24 * 3600


@app.task(
    name=RECONCILE_DRY_RUN,
    ignore_result=False,
    result_expires=DRY_RUN_RESULT_SECONDS,
    time_limit=TIME_LIMIT_SECONDS,
    soft_time_limit=TIME_LIMIT_SECONDS - 60,
)
def reconcile_dry_run() -> dict[str, object]:
    """Compare every Stripe subscription with the local copy, change nothing; the report."""
    settings = get_settings()
    client = reconciliation_client(settings)
    if client is None:
        report = Report(
            run_id=None, status="failed", error=stripe_unavailable_reason(settings), dry_run=True
        )
    else:
        report = dry_run(client=client)
    return report.model_dump(mode="json")
