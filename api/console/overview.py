"""The overview: events per minute by outcome, processing lag, failed and stale events, open
disputes by deadline, this month's disputes, and the last reconciliation run. The panels are
one fragment that htmx fetches again every 15 seconds; without JavaScript the page is whole."""

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
from api.deps import SessionDep, SettingsDep
from billing.disputes import CLOSED_STATUSES
from core.settings import Settings
from db import console_reads
from db.models import Dispute, Invoice

router = APIRouter(prefix="/console", include_in_schema=False)

CHART_MINUTES = 60
REFRESH_SECONDS = 15


def _panels(session: Session, settings: Settings) -> dict[str, Any]:
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
    # The card networks' ratio is the month's disputes over its settled payments; paid
    # invoices stand for those here (issue 17's per-network rates replace this panel).
    paid = session.scalar(
        select(func.count()).where(Invoice.status == "paid", Invoice.stripe_created >= month_start)
    )
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
        "month_paid_invoices": paid or 0,
        "last_run": runs[0] if runs else None,
        "refresh_seconds": REFRESH_SECONDS,
        "stale_after": settings.sweep_stale_after_seconds,
    }


@router.get("/")
def overview(
    request: Request, me: ConsoleAdminDep, db: SessionDep, settings: SettingsDep
) -> Response:
    return render(
        request, "overview.html", {"me": me, "section": "overview", **_panels(db, settings)}
    )


@router.get("/overview/panels")
def overview_panels(
    request: Request, me: ConsoleAdminDep, db: SessionDep, settings: SettingsDep
) -> Response:
    return render(request, "_overview_panels.html", {"me": me, **_panels(db, settings)})
