"""The customer emails the billing rules send, each under a key that makes it once only."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from core.observability import redact_email
from db.models import Account
from tasks.emails import queue_email

log = logging.getLogger("billing.events")


def notify_customer(
    session: Session, account: Account, *, key: str, template: str, context: dict[str, Any]
) -> None:
    """Queue a customer email; an account without an email address gets none (logged)."""
    if not account.email:
        log.info("no email address for %s: %s not sent", account.stripe_customer_id, key)
        return
    queue_email(
        session,
        key=key,
        template=template,
        recipients=[account.email],
        context={"customer_name": None, **context},
    )
    log.info("queued %s for %s", key, redact_email(account.email))
