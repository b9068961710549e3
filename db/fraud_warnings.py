"""Early fraud warnings as stored; whether a newer state applies is `billing.fraud_warnings`'."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from db.models import EarlyFraudWarning
from db.upserts import insert_or_lock


def lock_warning_row(
    session: Session,
    *,
    warning_id: str,
    charge_id: str,
    actionable: bool,
    as_of: datetime,
) -> tuple[EarlyFraudWarning, bool]:
    """The warning's row, inserted the first time it is met and locked; (row, created)."""
    return insert_or_lock(
        session,
        EarlyFraudWarning,
        key=EarlyFraudWarning.stripe_warning_id,
        values={
            "stripe_warning_id": warning_id,
            "charge_id": charge_id,
            "actionable": actionable,
            "state_as_of": as_of,
        },
    )
