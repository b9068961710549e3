"""The daily check of the card networks' monitoring ratios; the rules are
`billing.dispute_rates.check_ratios`."""

from __future__ import annotations

from datetime import UTC, datetime

from billing.dispute_rates import check_ratios
from db.session import transaction
from tasks.celery_app import app
from tasks.context import worker_context


@app.task(name="billing.check_dispute_ratios", ignore_result=True)
def check_dispute_ratios(now: float | None = None) -> dict[str, str]:
    """Compute the month of `now` (Unix time; default: the present); each network's status."""
    ctx = worker_context()
    moment = datetime.fromtimestamp(now, UTC) if now is not None else ctx.now()
    with transaction() as session:
        return {rate.network: rate.status for rate in check_ratios(session, ctx, now=moment)}
