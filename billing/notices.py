"""The decision to email: which notice goes to whom, once per key. Rendering and delivery
belong to `emails/` and the `emails.send` task."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from billing.context import BillingContext
from core.redaction import redact_email
from db.emails import queue_email
from db.models import Account

log = logging.getLogger("billing.notices")


def notify_customer(
    session: Session,
    ctx: BillingContext,
    account: Account,
    *,
    key: str,
    template: str,
    context: dict[str, Any],
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
        send=ctx.send_email,
    )
    log.info("queued %s for %s", key, redact_email(account.email))


def notify_admins(
    session: Session, ctx: BillingContext, *, key: str, template: str, context: dict[str, Any]
) -> None:
    """Queue an email to every ADMIN_EMAILS address; with none configured, only a log line."""
    recipients = list(ctx.settings.admin_addresses)
    if not recipients:
        log.warning("no ADMIN_EMAILS: %s not sent", key)
        return
    queue_email(
        session,
        key=key,
        template=template,
        recipients=recipients,
        context=context,
        send=ctx.send_email,
    )
