"""The card networks' monitoring ratios of one month, as the networks count them, from what
the platform has seen (and, in the daily check, from Stripe where it has not seen a payment).

- Visa Acquirer Monitoring Program (VAMP; from April 2026 a merchant is enrolled at 1.5% and
  1,500 counted transactions): (fraud reports + disputes) / settled transactions of the
  month. Fraud reports are Stripe's early fraud warnings (TC40s).
- Mastercard Excessive Chargeback Program (ECP: 1.5% and 100 chargebacks): chargebacks of the
  month over the previous month's transactions (the `settled` it reports).

A network reads `over` once both its ratio and its count reach their thresholds, `warning`
once both reach DISPUTE_RATIO_WARNING_SHARE of them (70%), else `ok`. The thresholds are
settings (docs/billing-rules.md names their sources). The daily check emails the admins once
per network, month and status, and keeps the figures for `/metrics`.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, aliased

from billing.context import BillingContext
from billing.notices import notify_admins
from billing.purchases import store_charge
from db.models import (
    Account,
    Dispute,
    DisputeRatioSnapshot,
    EarlyFraudWarning,
    Invoice,
    PaymentRecord,
)

log = logging.getLogger("billing.dispute_rates")

NETWORKS = ("visa", "mastercard")
MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
ALERTING = ("warning", "over")


@dataclass(frozen=True, slots=True)
class NetworkRate:
    network: str
    settled: int
    fraud_reports: int
    disputes: int
    ratio: float
    threshold: float
    count_threshold: int
    status: str


def parse_month(month: str) -> tuple[datetime, datetime]:
    """[start, end) of `YYYY-MM` in UTC; ValueError for anything else."""
    match = MONTH.match(month)
    if match is None:
        raise ValueError("month must be YYYY-MM, such as 2026-04")
    year, number = int(match.group(1)), int(match.group(2))
    start = datetime(year, number, 1, tzinfo=UTC)
    end = datetime(year + (number == 12), number % 12 + 1, 1, tzinfo=UTC)
    return start, end


def month_of(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m")


def previous_month(month: str) -> str:
    start, _ = parse_month(month)
    year, number = (start.year - 1, 12) if start.month == 1 else (start.year, start.month - 1)
    return f"{year:04d}-{number:02d}"


def network_rates(session: Session, ctx: BillingContext, *, month: str) -> list[NetworkRate]:
    """Every monitored network's figures for the month (all listed, even without payments)."""
    start, end = parse_month(month)
    previous_start, _ = parse_month(previous_month(month))
    settled = _settled(session, start=start, end=end)
    settled_before = _settled(session, start=previous_start, end=start)
    reports = _counted(session, EarlyFraudWarning, start=start, end=end)
    disputes = _counted(session, Dispute, start=start, end=end)
    settings = ctx.settings
    return [
        _rate(
            "visa",
            settled=settled["visa"],
            fraud_reports=reports["visa"],
            disputes=disputes["visa"],
            count=reports["visa"] + disputes["visa"],
            threshold=settings.dispute_ratio_visa_threshold,
            count_threshold=settings.dispute_count_visa_threshold,
            share=settings.dispute_ratio_warning_share,
        ),
        _rate(
            "mastercard",
            settled=settled_before["mastercard"],
            fraud_reports=reports["mastercard"],
            disputes=disputes["mastercard"],
            count=disputes["mastercard"],
            threshold=settings.dispute_ratio_mastercard_threshold,
            count_threshold=settings.dispute_count_mastercard_threshold,
            share=settings.dispute_ratio_warning_share,
        ),
    ]


def _network(*columns: Any) -> Any:
    return func.lower(func.coalesce(*columns, "unknown"))


def _settled(session: Session, *, start: datetime, end: datetime) -> Counter[str]:
    """Successful charges Stripe created in [start, end), by card network (one query)."""
    network = _network(PaymentRecord.card_network, PaymentRecord.card_brand)
    rows = session.execute(
        select(network, func.count())
        .where(PaymentRecord.stripe_created >= start, PaymentRecord.stripe_created < end)
        .group_by(network)
    ).all()
    return Counter({str(name): int(count) for name, count in rows})


def _counted(
    session: Session,
    table: type[EarlyFraudWarning] | type[Dispute],
    *,
    start: datetime,
    end: datetime,
) -> Counter[str]:
    """Fraud reports or chargebacks Stripe created in [start, end), by the network of their
    charge (a dispute also says its own card brand)."""
    record = aliased(PaymentRecord)
    own = (table.network,) if table is Dispute else ()  # type: ignore[union-attr]
    network = _network(*own, record.card_network, record.card_brand)
    query = (
        select(network, func.count())
        .select_from(table)
        .outerjoin(record, record.charge_id == table.charge_id)
        .where(table.stripe_created >= start, table.stripe_created < end)
        .group_by(network)
    )
    if table is Dispute:
        query = query.where(Dispute.is_inquiry.is_(False))
    return Counter({str(name): int(count) for name, count in session.execute(query).all()})


def _rate(
    network: str,
    *,
    settled: int,
    fraud_reports: int,
    disputes: int,
    count: int,
    threshold: float,
    count_threshold: int,
    share: float,
) -> NetworkRate:
    ratio = count / settled if settled else (1.0 if count else 0.0)
    if ratio >= threshold and count >= count_threshold:
        status = "over"
    elif ratio >= threshold * share and count >= count_threshold * share:
        status = "warning"
    else:
        status = "ok"
    return NetworkRate(
        network=network,
        settled=settled,
        fraud_reports=fraud_reports,
        disputes=disputes,
        ratio=round(ratio, 6),
        threshold=threshold,
        count_threshold=count_threshold,
        status=status,
    )


def learn_unseen_payments(session: Session, ctx: BillingContext, *, month: str) -> int:
    """Ask Stripe for the charges of the month's paid invoices that no `charge.succeeded`
    told the platform about (events missed, or sent before it subscribed); how many."""
    if ctx.stripe is None:
        return 0
    start, end = parse_month(month)
    seen = select(PaymentRecord.charge_id).where(PaymentRecord.charge_id == Invoice.charge_id)
    unseen = session.execute(
        select(Invoice.charge_id, Invoice.payment_intent_id, Invoice.account_id).where(
            Invoice.stripe_created >= start,
            Invoice.stripe_created < end,
            Invoice.amount_paid > 0,
            ~seen.exists(),
        )
    ).all()
    learnt = 0
    for charge_id, intent, account_id in unseen:
        charge = None
        if charge_id:
            charge = ctx.retrieve(lambda client, c=charge_id: client.v1.charges.retrieve(c))
        elif intent:
            paid = ctx.retrieve(
                lambda client, i=intent: client.v1.payment_intents.retrieve(
                    i, params={"expand": ["latest_charge"]}
                )
            )
            latest = (paid or {}).get("latest_charge")
            charge = latest if isinstance(latest, dict) else None
        if charge is None or charge.get("status") not in (None, "succeeded"):
            continue
        store_charge(session, ctx, charge=charge, account=session.get(Account, account_id))
        learnt += 1
    return learnt


def check_ratios(session: Session, ctx: BillingContext, *, now: datetime) -> list[NetworkRate]:
    """The daily check of the current month: learn unseen payments, keep the figures, and
    email the admins once per network, month and status when one reads warning or over."""
    month = month_of(now)
    learnt = learn_unseen_payments(session, ctx, month=month)
    if learnt:
        log.info("dispute ratios: %d payments of %s learnt from Stripe", learnt, month)
    rates = network_rates(session, ctx, month=month)
    for rate in rates:
        _keep(session, month, rate)
        if rate.status in ALERTING:
            notify_admins(
                session,
                ctx,
                key=f"dispute-ratio:{rate.network}:{month}:{rate.status}",
                template="dispute_ratio",
                context={
                    "network": rate.network,
                    "month": month,
                    "status": rate.status,
                    "ratio": rate.ratio,
                    "threshold": rate.threshold,
                    "count": rate.fraud_reports + rate.disputes
                    if rate.network == "visa"
                    else rate.disputes,
                    "count_threshold": rate.count_threshold,
                    "settled": rate.settled,
                    "fraud_reports": rate.fraud_reports,
                    "disputes": rate.disputes,
                },
            )
    return rates


def _keep(session: Session, month: str, rate: NetworkRate) -> None:
    values = {
        "settled": rate.settled,
        "fraud_reports": rate.fraud_reports,
        "disputes": rate.disputes,
        "ratio": rate.ratio,
        "status": rate.status,
        "computed_at": datetime.now(UTC),
    }
    session.execute(
        insert(DisputeRatioSnapshot)
        .values(month=month, network=rate.network, **values)
        .on_conflict_do_update(constraint="uq_dispute_ratio_snapshots_month_network", set_=values)
    )
