"""Realistic sample contexts of every email: for `billing emails preview` and the tests."""

from __future__ import annotations

from typing import Any

PERIOD_START = 1767225600  # 2026-01-01T00:00:00Z
PERIOD_END = 1769904000  # 2026-02-01T00:00:00Z
DUE_BY = 1768176000  # 2026-01-12T00:00:00Z
DASHBOARD = "https://dashboard.stripe.com/test/disputes/du_1SampleDispute01"

SAMPLES: dict[str, dict[str, Any]] = {
    "payment_succeeded": {
        "customer_name": "Jane Doe",
        "timezone": "Europe/Paris",
        "amount": 2900,
        "currency": "usd",
        "plan_name": "Pro",
        "credits_granted": 5000,
        "period_start": PERIOD_START,
        "period_end": PERIOD_END,
        "invoice_number": "EXMPL-0042",
        "invoice_url": "https://invoice.stripe.com/i/acct_1Sample/test_in_1Sample",
        "invoice_pdf": "https://pay.stripe.com/invoice/acct_1Sample/test_in_1Sample/pdf",
    },
    "payment_failed": {
        "customer_name": "Jane Doe",
        "timezone": "America/New_York",
        "amount": 2900,
        "currency": "usd",
        "plan_name": "Pro",
        "invoice_number": "EXMPL-0043",
        "failure_reason": "your card was declined",
        "next_attempt": PERIOD_START + 3 * 86400,
        "invoice_url": "https://invoice.stripe.com/i/acct_1Sample/test_in_1Failed",
    },
    "subscription_canceled": {
        "customer_name": "Jane Doe",
        "timezone": None,
        "plan_name": "Starter",
        "ended_at": PERIOD_END,
        "credits_balance": 120,
    },
    "plan_changed": {
        "customer_name": "Jane Doe",
        "timezone": "Asia/Tokyo",
        "direction": "upgrade",
        "old_plan_name": "Starter",
        "new_plan_name": "Pro",
        "new_monthly_credits": 5000,
        "credits_granted": 4000,
        "period_end": PERIOD_END,
    },
    "credits_low": {
        "customer_name": "Jane Doe",
        "timezone": None,
        "credits_balance": 42,
        "threshold": 100,
        "plan_name": "Starter",
        "period_end": PERIOD_END,
        "upgrade_url": "https://app.example.com/billing",
    },
    "dispute_opened": {
        "dispute_id": "du_1SampleDispute01",
        "is_inquiry": False,
        "unlinked": False,
        "amount": 2900,
        "currency": "usd",
        "reason": "fraudulent",
        "customer": "cus_SampleCustomer (j***@example.com)",
        "due_by": DUE_BY,
        "dashboard_url": DASHBOARD,
    },
    "dispute_closed": {
        "dispute_id": "du_1SampleDispute01",
        "outcome": "won",
        "status": "won",
        "amount": 2900,
        "currency": "usd",
        "reason": "fraudulent",
        "customer": "cus_SampleCustomer (j***@example.com)",
        "dashboard_url": DASHBOARD,
    },
    "dispute_evidence_due": {
        "dispute_id": "du_1SampleDispute01",
        "days_left": 5,
        "amount": 2900,
        "currency": "usd",
        "reason": "product_not_received",
        "status": "needs_response",
        "customer": "cus_SampleCustomer (j***@example.com)",
        "due_by": DUE_BY,
        "dashboard_url": DASHBOARD,
    },
    "fraud_warning": {
        "warning_id": "issfr_1SampleWarning01",
        "charge_id": "ch_1SampleCharge01",
        "fraud_type": "made_with_stolen_card",
        "actionable": True,
        "customer": "cus_SampleCustomer (j***@example.com)",
        "action": "hold",
        "dashboard_url": "https://dashboard.stripe.com/test/payments/ch_1SampleCharge01",
    },
    "dispute_ratio": {
        "network": "visa",
        "month": "2026-04",
        "status": "warning",
        "ratio": 0.0112,
        "threshold": 0.015,
        "count": 1120,
        "count_threshold": 1500,
        "settled": 100000,
        "fraud_reports": 700,
        "disputes": 420,
    },
}
