"""Typed SQLAlchemy models of the platform's tables."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSON, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class EventStatus(enum.StrEnum):
    RECEIVED = "received"  # stored; no task message published yet (the row is the outbox)
    QUEUED = "queued"  # a `stripe.<type>` message was published, or a retry is scheduled
    PROCESSING = "processing"  # a worker claimed it; the claim dies with the worker's connection
    PROCESSED = "processed"  # the handler's effects and this status committed together
    FAILED = "failed"  # a permanent error, or retries ran out; `billing replay` runs it again
    IGNORED = "ignored"  # a type the platform does not handle; kept for the audit


PENDING_STATUSES = (EventStatus.RECEIVED, EventStatus.QUEUED, EventStatus.PROCESSING)
_status_list = ", ".join(f"'{s.value}'" for s in EventStatus)
_pending_list = ", ".join(f"'{s.value}'" for s in PENDING_STATUSES)


class WebhookEvent(Base):
    """The audit row of one Stripe event: also the outbox of its task. Partitioned by month
    (the month is in the id: `webhook_events_next_id()`, migration 0016); old months are
    archived only when WEBHOOK_EVENTS_RETENTION_MONTHS says so. A Stripe event id is stored
    once: the insert trigger claims it in `webhook_event_ids` and drops a second row."""

    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(
        BigInteger, primary_key=True, server_default=text("webhook_events_next_id()")
    )
    stripe_event_id: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(Text)
    api_version: Mapped[str | None] = mapped_column(Text)
    livemode: Mapped[bool]
    account: Mapped[str | None] = mapped_column(Text)  # the Connect account, when there is one
    stripe_created: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # json, not jsonb: the body as it came, at 40 % less PostgreSQL CPU to store (decision 0008).
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(Text, server_default=EventStatus.RECEIVED.value)
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # When the row was last handed to the broker and last claimed by a worker: the sweep
    # re-enqueues pending rows whose newest of these is older than SWEEP_STALE_AFTER_SECONDS.
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(f"status IN ({_status_list})", name="ck_webhook_events_status"),
        Index("ix_webhook_events_status_id", "status", "id"),
        Index("ix_webhook_events_type_id", "type", "id"),
        Index(
            "ix_webhook_events_pending",
            "id",
            postgresql_where=text(f"status IN ({_pending_list})"),
        ),
        # GET /metrics: the oldest pending event, and failed events by type (migration 0008).
        Index(
            "ix_webhook_events_pending_received_at",
            "received_at",
            postgresql_where=text(f"status IN ({_pending_list})"),
        ),
        Index("ix_webhook_events_failed_type", "type", postgresql_where=text("status = 'failed'")),
    )


class WebhookEventId(Base):
    """Which row holds a Stripe event id: the dedup across partitions (ADR 0005), and the
    way from a Stripe id to its row without probing every month."""

    __tablename__ = "webhook_event_ids"

    stripe_event_id: Mapped[str] = mapped_column(Text, primary_key=True)
    row_id: Mapped[int] = mapped_column(BigInteger)


class EmailStatus(enum.StrEnum):
    PENDING = "pending"  # stored; `emails.send` has not delivered it yet
    SENT = "sent"  # the SMTP server accepted it
    FAILED = "failed"  # a permanent refusal, or retries ran out


class EmailLog(Base):
    """One email the platform decided to send. The idempotency key makes a second request
    for the same email (a retried task, a duplicate event) a no-op."""

    __tablename__ = "email_log"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(Text, unique=True)  # `receipt:in_...`
    template: Mapped[str] = mapped_column(Text)
    recipients: Mapped[list[str]] = mapped_column(JSONB)
    context: Mapped[dict[str, Any]] = mapped_column(JSONB)
    subject: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default=EmailStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)
    smtp_response: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("status IN ('pending', 'sent', 'failed')", name="ck_email_log_status"),
        Index("ix_email_log_pending", "id", postgresql_where=text("status = 'pending'")),
        Index(
            "ix_email_log_failed_template", "template", postgresql_where=text("status = 'failed'")
        ),
    )


# --- Billing: accounts, subscriptions and their history, invoices, the credit ledger ---------


class Account(Base):
    """A Stripe customer and, when known, the host-application user it belongs to."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    stripe_customer_id: Mapped[str] = mapped_column(Text, unique=True)
    user_id: Mapped[str | None] = mapped_column(Text, index=True)
    email: Mapped[str | None] = mapped_column(Text)
    # Stripe's `created` of the newest customer object applied to email and user.
    contact_as_of: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The plan the account's live subscription pays for; `free` without one.
    plan: Mapped[str] = mapped_column(Text, server_default="free")
    # Set by `customer.deleted`: the ledger and history stay, the user is unlinked.
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class Subscription(Base):
    """The platform's copy of a Stripe subscription, never older than `state_as_of`."""

    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    stripe_subscription_id: Mapped[str] = mapped_column(Text, unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    status: Mapped[str] = mapped_column(Text)
    price_id: Mapped[str | None] = mapped_column(Text)
    plan: Mapped[str | None] = mapped_column(Text)  # None: a price the catalogue lacks
    current_period_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    current_period_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_at_period_end: Mapped[bool] = mapped_column(server_default=text("false"))
    # Stripe's `created` of the newest event (or fetch) applied: older state is skipped.
    state_as_of: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Set when Stripe no longer knows the subscription (the reconciliation finds that).
    missing_in_stripe_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class SubscriptionChange(Base):
    """One change of a subscription's plan, status, cancel flag or period end, and its cause."""

    __tablename__ = "subscription_changes"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    cause: Mapped[str] = mapped_column(Text)  # `event`, `reconciliation` or `api`
    stripe_event_id: Mapped[str | None] = mapped_column(Text)
    # {field: [before, after]} for each field that changed; `before` is null on creation.
    changes: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(Text)
    plan: Mapped[str | None] = mapped_column(Text)
    price_id: Mapped[str | None] = mapped_column(Text)
    cancel_at_period_end: Mapped[bool]
    current_period_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    state_as_of: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    __table_args__ = (
        CheckConstraint(
            "cause IN ('event', 'reconciliation', 'api')", name="ck_subscription_changes_cause"
        ),
    )


class Invoice(Base):
    """A Stripe invoice as last seen: what was billed, its status and where to read it."""

    __tablename__ = "invoices"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    stripe_invoice_id: Mapped[str] = mapped_column(Text, unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    stripe_subscription_id: Mapped[str | None] = mapped_column(Text)
    number: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str | None] = mapped_column(Text)
    billing_reason: Mapped[str | None] = mapped_column(Text)
    currency: Mapped[str] = mapped_column(Text)
    amount_due: Mapped[int] = mapped_column(BigInteger)
    amount_paid: Mapped[int] = mapped_column(BigInteger)
    price_id: Mapped[str | None] = mapped_column(Text)
    plan: Mapped[str | None] = mapped_column(Text)
    payment_intent_id: Mapped[str | None] = mapped_column(Text, index=True)
    charge_id: Mapped[str | None] = mapped_column(Text, index=True)
    hosted_invoice_url: Mapped[str | None] = mapped_column(Text)
    invoice_pdf: Mapped[str | None] = mapped_column(Text)
    period_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    period_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    stripe_created: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Its proration lines, `{"subscription", "price", "start", "end", "amount"}` each: the plan
    # changes it bills, so that an upgrade recorded after it was paid still finds it.
    prorations: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, server_default=text("'[]'::jsonb")
    )
    # What the platform's own PDF shows of each line, `{"description", "quantity", "amount",
    # "currency", "start", "end"}` (see `core.stripe_objects.invoice_line_summaries`).
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    state_as_of: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The description time of the newest paid-invoice event whose effects (the period's
    # credits, the upgrades it paid, earlier refunds' shares, the receipt) are applied: a paid
    # event no newer than this has nothing left to do (migration 0018).
    paid_applied_as_of: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class InvoicePayment(Base):
    """One part of an invoice paid in several payments (`invoice_payment.paid`): the parts'
    sum tells when the invoice is paid in full."""

    __tablename__ = "invoice_payments"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    stripe_invoice_payment_id: Mapped[str] = mapped_column(Text, unique=True)
    stripe_invoice_id: Mapped[str] = mapped_column(Text, index=True)
    # None while the invoice is not known yet (the part waits for it).
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    amount_paid: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(Text)
    payment_intent_id: Mapped[str | None] = mapped_column(Text)
    charge_id: Mapped[str | None] = mapped_column(Text)
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CheckoutExpiration(Base):
    """A Checkout Session that expired unpaid, once per session: abandoned checkouts counted,
    and whether the customer agreed to promotional email (the recovery email's condition)."""

    __tablename__ = "checkout_expirations"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    stripe_checkout_session_id: Mapped[str] = mapped_column(Text, unique=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    mode: Mapped[str | None] = mapped_column(Text)
    item: Mapped[str | None] = mapped_column(Text)  # the plan or the credit pack it was for
    amount_total: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(Text)
    promotions_consent: Mapped[bool] = mapped_column(server_default=text("false"))
    expired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ArchiveSource(enum.StrEnum):
    STRIPE = "stripe"  # Stripe's own PDF, downloaded from `invoice_pdf`
    GENERATED = "generated"  # the platform's, rendered where Stripe's could not be had


class InvoiceArchive(Base):
    """The kept PDF of an invoice: one per invoice, its bytes in the object store under
    `store_key`, their sha256 and size recorded here to prove them unchanged."""

    __tablename__ = "invoice_archives"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    stripe_invoice_id: Mapped[str] = mapped_column(
        ForeignKey("invoices.stripe_invoice_id"), unique=True
    )
    store_key: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(Text)
    # The invoice's status when this copy was made: an `open` copy is replaced once paid.
    invoice_status: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint("source IN ('stripe', 'generated')", name="ck_invoice_archives_source"),
        CheckConstraint("size_bytes > 0", name="ck_invoice_archives_size"),
    )


class CreditKind(enum.StrEnum):
    PLAN_CREDITS = "plan_credits"  # a paid subscription invoice; source: the invoice id
    # Granted once the invoice paying the upgrade's proration is paid; source: the key of
    # its `upgrade_top_ups` row, `<sub>:<new price>:<period start>`.
    UPGRADE_CREDITS = "upgrade_credits"
    # A downgrade's take-back of the period's top-ups (negative); source: `<sub>:<new price>:
    # <period start>`, then `…#<n>` for the n-th adjustment as more top-ups are granted.
    DOWNGRADE_CREDITS = "downgrade_credits"
    PACK_CREDITS = "pack_credits"  # a one-time credit pack; source: the payment intent
    REFUND = "refund"  # source: `<charge>:<amount refunded so far>`
    DISPUTE_HOLD = "dispute_hold"  # source: the dispute id
    DISPUTE_RELEASE = "dispute_release"  # a won dispute; source: the dispute id
    # The part of a credit note not refunded (the customer's balance, out of band); source:
    # the credit note id, then `…#<n>` (its voiding gives it back).
    CREDIT_NOTE = "credit_note"
    # An early fraud warning holds back what its charge bought until a refund or a dispute
    # takes over (then released); source: the warning id (`issfr_...`).
    FRAUD_WARNING_HOLD = "fraud_warning_hold"
    FRAUD_WARNING_RELEASE = "fraud_warning_release"
    CONSUMPTION = "consumption"  # credits spent; source: the request's idempotency key


class CreditEntry(Base):
    """One append-only movement of credits. The balance is the sum; nothing updates it."""

    __tablename__ = "credit_ledger"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    kind: Mapped[str] = mapped_column(Text)
    source_id: Mapped[str] = mapped_column(Text)
    amount: Mapped[int] = mapped_column(BigInteger)
    # The payment a grant came from, so that a refund or a dispute finds what to take back.
    payment_intent_id: Mapped[str | None] = mapped_column(Text, index=True)
    charge_id: Mapped[str | None] = mapped_column(Text, index=True)
    # The invoice whose payment bought a period's or an upgrade's credits: how a refund or a
    # dispute finds them when the payment's ids were not on the invoice (newer API versions).
    stripe_invoice_id: Mapped[str | None] = mapped_column(Text, index=True)
    stripe_event_id: Mapped[str | None] = mapped_column(Text)  # the event that caused it
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        UniqueConstraint("kind", "source_id", name="uq_credit_ledger_kind_source"),
        Index("ix_credit_ledger_account_id", "account_id", "id"),
    )


class PaymentRefund(Base):
    """What has been refunded of one charge: a fact about the payment, stored even before
    the purchase it refunds is known (`billing.settlement` settles it when that arrives)."""

    __tablename__ = "payment_refunds"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    charge_id: Mapped[str] = mapped_column(Text, unique=True)
    payment_intent_id: Mapped[str | None] = mapped_column(Text, index=True)
    stripe_invoice_id: Mapped[str | None] = mapped_column(Text, index=True)
    amount: Mapped[int] = mapped_column(BigInteger)  # the charge's amount, minor units
    # The largest cumulative amount refunded seen: a late event of a smaller one changes nothing.
    amount_refunded: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CreditNote(Base):
    """A credit note on an invoice: a fact about the invoice's payment. `refunds` are the
    refunds it made (`[{"refund": id, "amount": minor units}]`), the same money as the
    charge's `charge.refunded`; the rest of `amount` was credited to the customer's balance
    or paid out of band. Voided (`status` void) it moves no credits, and stays void."""

    __tablename__ = "credit_notes"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    stripe_credit_note_id: Mapped[str] = mapped_column(Text, unique=True)
    stripe_invoice_id: Mapped[str] = mapped_column(Text, index=True)
    status: Mapped[str] = mapped_column(Text)  # issued | void
    amount: Mapped[int] = mapped_column(BigInteger)  # the credit note's total, minor units
    refunds: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    currency: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class UpgradeTopUp(Base):
    """A plan change within a period, once per subscription, new price and period. An
    upgrade waits for the invoice that pays its proration: settled by the first paid invoice
    with a charging proration line of that subscription and price within the period (its own
    invoice, or the renewal that carries it); the ledger entry, keyed by `key`, carries that
    invoice and its payment so that a refund or a dispute of the payment finds it. A
    downgrade's key starts with `downgrade:`; it waits for no payment, so it is settled when
    recorded."""

    __tablename__ = "upgrade_top_ups"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    key: Mapped[str] = mapped_column(Text, unique=True)  # `<sub>:<new price>:<period start>`
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    stripe_subscription_id: Mapped[str] = mapped_column(Text)
    price_id: Mapped[str] = mapped_column(Text)  # the price upgraded to
    old_price_id: Mapped[str] = mapped_column(Text)  # the price it left
    period_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    period_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    stripe_event_id: Mapped[str | None] = mapped_column(Text)  # the event that recorded it
    # When the change happened (its event's `created`): a downgrade's take-back is prorated
    # from it. Null for rows recorded before 0011.
    changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The paid invoice that settled it, and the credits that granted (0: the period had
    # already reached the plan); both null while the upgrade is unpaid.
    stripe_invoice_id: Mapped[str | None] = mapped_column(Text, index=True)
    credits: Mapped[int | None] = mapped_column(BigInteger)
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        Index(
            "ix_upgrade_top_ups_unpaid",
            "stripe_subscription_id",
            "price_id",
            postgresql_where=text("settled_at IS NULL"),
        ),
    )


# --- Disputes -------------------------------------------------------------------------------


class Dispute(Base):
    """A Stripe dispute (an inquiry or a chargeback), linked to the grant its payment bought."""

    __tablename__ = "disputes"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    stripe_dispute_id: Mapped[str] = mapped_column(Text, unique=True)
    charge_id: Mapped[str | None] = mapped_column(Text, index=True)
    payment_intent_id: Mapped[str | None] = mapped_column(Text)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    # The grant the disputed payment bought; null while the dispute is unlinked.
    grant_entry_id: Mapped[int | None] = mapped_column(ForeignKey("credit_ledger.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    is_inquiry: Mapped[bool]
    is_charge_refundable: Mapped[bool] = mapped_column(server_default=text("false"))
    evidence_due_by: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    evidence_submission_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    livemode: Mapped[bool] = mapped_column(server_default=text("false"))
    stripe_created: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Stripe's `created` of the newest event (or API answer) applied: older ones are skipped.
    state_as_of: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    # What the network and Stripe say of the case (0015): `visa`, `mastercard`, ...; the
    # network's reason code (`10.4` is Visa's card-absent fraud); Smart Disputes' part
    # (`evidence_details.submission_method`, `intended_submission_method`); and Stripe's
    # `evidence_details.enhanced_eligibility`, as sent.
    network: Mapped[str | None] = mapped_column(Text)
    network_reason_code: Mapped[str | None] = mapped_column(Text)
    submission_method: Mapped[str | None] = mapped_column(Text)
    intended_submission_method: Mapped[str | None] = mapped_column(Text)
    enhanced_eligibility: Mapped[dict[str, Any] | None] = mapped_column(JSONB)

    @property
    def linked(self) -> bool:
        return self.grant_entry_id is not None


class EarlyFraudWarning(Base):
    """A card network's fraud report on a charge (Visa TC40, Mastercard SAFE), as Stripe
    sends it in `radar.early_fraud_warning.*`: a fact about the charge's payment."""

    __tablename__ = "early_fraud_warnings"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    stripe_warning_id: Mapped[str] = mapped_column(Text, unique=True)  # `issfr_...`
    charge_id: Mapped[str] = mapped_column(Text, index=True)
    payment_intent_id: Mapped[str | None] = mapped_column(Text, index=True)
    # The invoice the charge paid, when known: how a period's grant that names no payment
    # (newer API versions) finds the warning.
    stripe_invoice_id: Mapped[str | None] = mapped_column(Text, index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    fraud_type: Mapped[str | None] = mapped_column(Text)
    actionable: Mapped[bool]
    livemode: Mapped[bool] = mapped_column(server_default=text("false"))
    stripe_created: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Stripe's `created` of the newest event applied: an older `updated` is skipped.
    state_as_of: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The policy's refund, asked of Stripe once (key `efw-refund:<warning id>`).
    refund_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


# --- Purchase context: what a dispute's evidence can say about who paid --------------------


class CheckoutContext(Base):
    """The buyer's side of a Checkout the platform opened: who, from which IP and device.
    Completed sessions name the payment intent (payment mode) or first invoice they paid."""

    __tablename__ = "checkout_contexts"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    checkout_session_id: Mapped[str] = mapped_column(Text, unique=True)
    user_id: Mapped[str] = mapped_column(Text)
    ip_address: Mapped[str | None] = mapped_column(Text)
    device_fingerprint: Mapped[str | None] = mapped_column(Text)
    payment_intent_id: Mapped[str | None] = mapped_column(Text, index=True)
    stripe_invoice_id: Mapped[str | None] = mapped_column(Text, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PaymentRecord(Base):
    """One successful charge and what is known of who made it: the card (fingerprint, brand,
    network, from `charge.succeeded`), the user (the customer account id of Visa CE 3.0), and
    the buyer's IP and device from the Checkout that paid it. Renewals inherit the user."""

    __tablename__ = "payment_records"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    charge_id: Mapped[str] = mapped_column(Text, unique=True)
    payment_intent_id: Mapped[str | None] = mapped_column(Text, index=True)
    stripe_invoice_id: Mapped[str | None] = mapped_column(Text, index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    user_id: Mapped[str | None] = mapped_column(Text)
    ip_address: Mapped[str | None] = mapped_column(Text)
    device_fingerprint: Mapped[str | None] = mapped_column(Text)
    card_fingerprint: Mapped[str | None] = mapped_column(Text, index=True)
    card_brand: Mapped[str | None] = mapped_column(Text)
    card_network: Mapped[str | None] = mapped_column(Text)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    stripe_created: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class DisputeRatioSnapshot(Base):
    """The last computed monitoring ratio of one network in one month (`/metrics` shows the
    current month's)."""

    __tablename__ = "dispute_ratio_snapshots"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    month: Mapped[str] = mapped_column(Text)  # `YYYY-MM`
    network: Mapped[str] = mapped_column(Text)
    settled: Mapped[int] = mapped_column(BigInteger)
    fraud_reports: Mapped[int] = mapped_column(BigInteger)
    disputes: Mapped[int] = mapped_column(BigInteger)
    ratio: Mapped[float]
    status: Mapped[str] = mapped_column(Text)
    computed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    __table_args__ = (
        UniqueConstraint("month", "network", name="uq_dispute_ratio_snapshots_month_network"),
    )


class DisputeStatusChange(Base):
    """One change of a dispute's status, and the event (or admin action) that made it."""

    __tablename__ = "dispute_status_changes"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    dispute_id: Mapped[int] = mapped_column(ForeignKey("disputes.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(Text)
    to_status: Mapped[str] = mapped_column(Text)
    cause: Mapped[str] = mapped_column(Text)  # `event` or `api`
    stripe_event_id: Mapped[str | None] = mapped_column(Text)
    state_as_of: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class DisputeFundsMovement(Base):
    """Money Stripe took for a dispute, or gave back: recorded once each, never credits."""

    __tablename__ = "dispute_funds_movements"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    dispute_id: Mapped[int] = mapped_column(ForeignKey("disputes.id"))
    kind: Mapped[str] = mapped_column(Text)  # `funds_withdrawn` or `funds_reinstated`
    amount: Mapped[int] = mapped_column(BigInteger)  # minor units; negative when withdrawn
    fee: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    currency: Mapped[str] = mapped_column(Text)
    balance_transaction_id: Mapped[str | None] = mapped_column(Text)
    stripe_event_id: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    __table_args__ = (
        UniqueConstraint("dispute_id", "kind", name="uq_dispute_funds_movements_kind"),
        CheckConstraint(
            "kind IN ('funds_withdrawn', 'funds_reinstated')",
            name="ck_dispute_funds_movements_kind",
        ),
    )


# --- The billing API: answers kept per idempotency key ---------------------------------------


class IdempotentRequest(Base):
    """The first answer to a user's request under one `Idempotency-Key`: a retry of the same
    request gets it again, the same key with another body is refused."""

    __tablename__ = "api_idempotency_keys"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[str] = mapped_column(Text)
    operation: Mapped[str] = mapped_column(Text)  # such as `credits.consume`
    key: Mapped[str] = mapped_column(Text)
    request_hash: Mapped[str] = mapped_column(Text)  # sha256 of the canonical JSON body
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        UniqueConstraint("user_id", "operation", "key", name="uq_api_idempotency_keys_request"),
    )


# --- Reconciliation: what each nightly comparison with Stripe found and repaired ------------


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ReconciliationRun(Base):
    """One comparison of every Stripe subscription with the local copies."""

    __tablename__ = "reconciliation_runs"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    status: Mapped[str] = mapped_column(Text, server_default=RunStatus.RUNNING.value)
    trigger: Mapped[str] = mapped_column(Text)  # `schedule`, `api` or `cli`
    checked: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    drifted: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    fixed: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # The last subscription compared, and the phase: where a failed run stopped.
    phase: Mapped[str] = mapped_column(Text, server_default="queued")
    last_subscription_id: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    # The best-effort catch-up of events whose delivery failed: `done`, `unsupported` (the
    # Stripe side lacks the call) or `failed`, with what it stored or why not.
    missed_events: Mapped[str | None] = mapped_column(Text)
    missed_events_detail: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Bumped after every page: a `running` row untouched for long lost its process.
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(
            "status IN ('running', 'succeeded', 'failed')", name="ck_reconciliation_runs_status"
        ),
        # At most one run at a time, whatever the number of beat, worker or API processes.
        Index(
            "uq_reconciliation_runs_running",
            "status",
            unique=True,
            postgresql_where=text("status = 'running'"),
        ),
    )


class ReconciliationItem(Base):
    """One difference a run found: a field of a subscription, an adoption, a subscription
    Stripe no longer has, or a missed event; and whether it was fixed, or why not."""

    __tablename__ = "reconciliation_items"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("reconciliation_runs.id"))
    kind: Mapped[str] = mapped_column(Text)  # `drift`, `adopted`, `missing_in_stripe`, ...
    object_id: Mapped[str] = mapped_column(Text)  # the subscription (or event) id
    stripe_customer_id: Mapped[str | None] = mapped_column(Text)
    field: Mapped[str] = mapped_column(Text)  # the drifted field, or `subscription`/`event`
    local_value: Mapped[Any] = mapped_column(JSONB, nullable=True)
    stripe_value: Mapped[Any] = mapped_column(JSONB, nullable=True)
    fixed: Mapped[bool]
    reason: Mapped[str | None] = mapped_column(Text)  # why it was not fixed, or how it was
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        # A page compared twice (a resumed task) records each difference once.
        UniqueConstraint(
            "run_id", "kind", "object_id", "field", name="uq_reconciliation_items_difference"
        ),
    )


# --- The operators' console: named admins, their sessions, the audit trail ------------------


class Admin(Base):
    """A person who signs in to the console. The password is set through a one-time link
    (`billing admin create`); only hashes are stored, of the password and of the link."""

    __tablename__ = "admins"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    email: Mapped[str] = mapped_column(Text, unique=True)  # lower case
    password_hash: Mapped[str | None] = mapped_column(Text)  # argon2id; None until set
    setup_token_hash: Mapped[str | None] = mapped_column(Text, unique=True)  # sha256, hex
    setup_token_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    password_set_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (CheckConstraint("email = lower(email)", name="ck_admins_email_lower"),)


class AdminSession(Base):
    """A signed-in browser: the cookie holds a random token, the row its sha256, so a copy
    of the table signs nobody in. Signing out deletes the row."""

    __tablename__ = "admin_sessions"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    token_hash: Mapped[str] = mapped_column(Text, unique=True)
    admin_id: Mapped[int] = mapped_column(ForeignKey("admins.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(Text)  # every form of the session carries it
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AdminActionKind(enum.StrEnum):
    LOGIN = "login"
    LOGIN_FAILED = "login_failed"  # a wrong password for a known admin
    LOGOUT = "logout"
    PASSWORD_SET = "password_set"
    REPLAY = "replay"
    EVIDENCE_STAGED = "evidence_staged"
    EVIDENCE_SUBMITTED = "evidence_submitted"
    DISPUTE_ACCEPTED = "dispute_accepted"
    RECONCILIATION_STARTED = "reconciliation_started"
    RECONCILIATION_DRY_RUN = "reconciliation_dry_run"


API_TOKEN_ACTOR = "api-token"  # the actor of what the JSON admin API's bearer token did


class AdminAction(Base):
    """One thing an admin (or the admin API's token) did: who, when, what, to which object."""

    __tablename__ = "admin_actions"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    admin_id: Mapped[int | None] = mapped_column(ForeignKey("admins.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(Text)  # the admin's email, or `api-token`
    action: Mapped[str] = mapped_column(Text)  # an AdminActionKind
    target: Mapped[str | None] = mapped_column(Text)  # `evt_...`, `du_...`, `run:12`
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    client_ip: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        Index("ix_admin_actions_created_at", "created_at"),
        Index("ix_admin_actions_target", "target", "id"),
    )
