"""The overview: events per minute by outcome, processing lag, failed and stale events, open
disputes by deadline, this month's disputes with the card networks' monitoring ratios, and the
last reconciliation run. The panels are one fragment that htmx fetches again every 15 seconds;
without JavaScript the page is whole."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.console.charts import STATUS_COLOURS, events_chart, minute_bars
from api.console.rendering import render
from api.console.security import ConsoleAdminDep
from api.deps import BillingDep, SessionDep
from billing.context import BillingContext
from billing.dispute_rates import month_of, network_rates
from billing.disputes import CLOSED_STATUSES
from db import console_reads
from db.models import Dispute

router = APIRouter(prefix="/console", include_in_schema=False)

CHART_MINUTES = 60
REFRESH_SECONDS = 15


def _panels(session: Session, ctx: BillingContext) -> dict[str, Any]:
    settings = ctx.settings
    now = session.scalar(select(func.now())) or datetime.now(UTC)
    since = now - timedelta(minutes=CHART_MINUTES)
    counts = console_reads.events_per_minute(session, since=since)
    bars = minute_bars(
        [(c.minute, c.status, c.count) for c in counts], end=now, minutes=CHART_MINUTES
    )
    month_start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    opened = session.execute(
        select(Dispute.status, func.count())
        .where(Dispute.stripe_created >= month_start)
        .group_by(Dispute.status)
    ).all()
    runs = console_reads.recent_runs(session, limit=1)
    return {
        "now": now,
        "chart": events_chart(bars),
        "colours": STATUS_COLOURS,
        "lag": console_reads.processing_lag(session, since=since),
        "failed": console_reads.failed_event_count(session),
        "stale": console_reads.stale_event_count(
            session, older_than=now - timedelta(seconds=settings.sweep_stale_after_seconds)
        ),
        "open_disputes": console_reads.disputes_by_deadline(
            session, closed_statuses=CLOSED_STATUSES, open_only=True, limit=10
        ),
        "month": f"{month_start:%B %Y}",
        "month_disputes": sorted(opened),
        "month_dispute_count": sum(count for _, count in opened),
        # The networks' monitoring ratios as `GET /api/admin/disputes/rates` gives them.
        "network_rates": network_rates(session, ctx, month=month_of(now)),
        "last_run": runs[0] if runs else None,
        "refresh_seconds": REFRESH_SECONDS,
        "stale_after": settings.sweep_stale_after_seconds,
    }


@router.get("/")
def overview(request: Request, me: ConsoleAdminDep, db: SessionDep, ctx: BillingDep) -> Response:
    return render(request, "overview.html", {"me": me, "section": "overview", **_panels(db, ctx)})


@router.get("/overview/panels")
def overview_panels(
    request: Request, me: ConsoleAdminDep, db: SessionDep, ctx: BillingDep
) -> Response:
    return render(request, "_overview_panels.html", {"me": me, **_panels(db, ctx)})
