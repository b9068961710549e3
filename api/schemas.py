"""The request and response bodies of the API, as `/docs` shows them.

A body read from a database row is a `RowOut`: built with `Model.model_validate(row)`, never
copied field by field. A field named otherwise than its column reads the column through
`validation_alias`; the JSON keeps the field's own name."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from db.models import EventStatus
from db.reconciliation_report import RunReport


class RowOut(BaseModel):
    # Every field is in every answer, defaulted or not: the schema says so (`required`).
    model_config = ConfigDict(
        from_attributes=True, json_schema_serialization_defaults_required=True
    )


class ErrorOut(BaseModel):
    detail: str = Field(description="A short reason, fit to show a developer.")


# How the app answers a request that fails validation (api.app's handler): one short reason,
# not FastAPI's list of errors, which the schema would otherwise promise. For every router.
VALIDATION_ERROR: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorOut, "description": "A parameter or the body is invalid: the first reason."}
}

Credits = Annotated[
    int, Field(description="Credits: grants positive; holds, refunds and spending negative.")
]

# --- The user billing API ---------------------------------------------------------------------


class BillingInfo(BaseModel):
    plan: str = Field(description="The plan the user has now: `free` without a subscription.")
    status: str | None = Field(
        description="Stripe's status of the newest subscription (`active`, `past_due`, "
        "`canceled`, ...); null if the user never subscribed."
    )
    current_period_end: datetime | None
    cancel_at_period_end: bool
    credits_balance: int


class CheckoutRequest(BaseModel):
    """Exactly one of `plan` (a paid plan, subscription mode) or `pack` (a credit pack,
    payment mode)."""

    model_config = ConfigDict(extra="forbid")

    plan: str | None = Field(default=None, max_length=64, examples=["pro"])
    pack: str | None = Field(default=None, max_length=64, examples=["small"])

    @model_validator(mode="after")
    def _one_of_plan_or_pack(self) -> CheckoutRequest:
        if (self.plan is None) == (self.pack is None):
            raise ValueError("give exactly one of plan or pack")
        return self


class CheckoutOut(BaseModel):
    url: str = Field(description="Stripe Checkout's page: send the user there.")
    session_id: str


class PlanChangeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan: str = Field(max_length=64, examples=["team"])


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at_period_end: bool = Field(
        default=True,
        description="true: the plan stays until the paid period ends; false: cancel now.",
    )


class SubscriptionSummaryOut(RowOut):
    """A subscription as an admin's customer view shows it."""

    id: str = Field(validation_alias="stripe_subscription_id")
    status: str
    price_id: str | None
    current_period_end: datetime | None
    cancel_at_period_end: bool


class SubscriptionOut(SubscriptionSummaryOut):
    """A subscription as its user sees it: with its plan."""

    plan: str | None


class SubscriptionChangeOut(BaseModel):
    """One change of a subscription, and the state it left, as its user sees it."""

    id: int = Field(description="Increasing with time; pass as `cursor` to continue.")
    subscription_id: str
    status: str
    plan: str | None
    price_id: str | None
    cancel_at_period_end: bool
    current_period_end: datetime | None
    changes: dict[str, list[Any]] = Field(
        description="`{field: [before, after]}` for each field that changed; `before` is "
        "null when the subscription was first stored."
    )
    as_of: datetime = Field(description="Stripe's time of the state this change applied.")


class SubscriptionHistory(BaseModel):
    items: list[SubscriptionChangeOut] = Field(description="Newest first.")
    has_more: bool
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class AdminSubscriptionChangeOut(SubscriptionChangeOut):
    """A change as an admin sees it: with what caused it and when it was recorded."""

    cause: str = Field(description="`event`, `reconciliation` or `api`.")
    stripe_event_id: str | None
    recorded_at: datetime


class AdminSubscriptionHistory(BaseModel):
    stripe_customer_id: str
    items: list[AdminSubscriptionChangeOut] = Field(description="Newest first.")
    has_more: bool
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class PortalOut(BaseModel):
    url: str = Field(description="Stripe's customer portal: send the user there.")


class InvoiceOut(RowOut):
    id: str = Field(validation_alias="stripe_invoice_id")
    number: str | None
    status: str | None
    currency: str
    amount_due: int = Field(description="Minor units of `currency`.")
    amount_paid: int
    plan: str | None
    period_start: datetime | None
    period_end: datetime | None
    created: datetime | None = Field(validation_alias="stripe_created")
    hosted_invoice_url: str | None
    invoice_pdf: str | None


class InvoicePage(BaseModel):
    items: list[InvoiceOut]
    has_more: bool
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class LedgerEntryOut(RowOut):
    """A ledger entry as its user sees it."""

    id: int
    amount: Credits
    kind: str
    description: str | None
    created_at: datetime


class CreditsPage(BaseModel):
    credits_balance: int
    ledger: list[LedgerEntryOut] = Field(description="Newest first.")
    has_more: bool
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class ConsumeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: int = Field(gt=0, le=1_000_000_000, description="Credits to spend.")
    reason: str | None = Field(default=None, max_length=500, examples=["image generation"])

    @field_validator("reason")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        # PostgreSQL text cannot hold NUL; other control characters have no place in a ledger.
        if value is not None and not value.isprintable():
            raise ValueError("reason must be printable text")
        return value


class ConsumeOut(BaseModel):
    id: int = Field(description="The ledger entry of this spend.")
    amount: int = Field(description="Credits spent.")
    reason: str | None
    credits_balance: int = Field(description="The balance after this spend.")
    created_at: datetime


# --- The admin API ----------------------------------------------------------------------------


class CustomerLedgerEntryOut(RowOut):
    """A ledger entry as an admin's customer view shows it: with what caused it."""

    amount: Credits
    kind: str
    source_id: str
    created_at: datetime


class DisputeSummaryOut(RowOut):
    """A dispute as an admin's customer view shows it."""

    id: str = Field(validation_alias="stripe_dispute_id")
    status: str
    amount: int  # minor units of `currency`
    reason: str | None
    evidence_due_by: datetime | None


class DisputeOut(DisputeSummaryOut):
    """A dispute as the admin dispute API shows it."""

    is_inquiry: bool
    currency: str
    charge: str | None = Field(validation_alias="charge_id")
    payment_intent: str | None = Field(validation_alias="payment_intent_id")
    # The account's Stripe customer: not a column of the dispute, so given after validation.
    customer: str | None = None
    linked: bool  # matched to the credit grant its payment bought
    evidence_submissions: int = Field(validation_alias="evidence_submission_count")


# Stripe's text evidence fields (files are uploaded in the dashboard).
EvidenceField = Literal[
    "access_activity_log",
    "billing_address",
    "cancellation_policy_disclosure",
    "cancellation_rebuttal",
    "customer_email_address",
    "customer_name",
    "customer_purchase_ip",
    "duplicate_charge_explanation",
    "product_description",
    "refund_policy_disclosure",
    "refund_refusal_explanation",
    "service_date",
    "shipping_address",
    "shipping_carrier",
    "shipping_date",
    "shipping_tracking_number",
    "uncategorized_text",
]


class EvidenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    evidence: dict[EvidenceField, Annotated[str, Field(max_length=20_000)]] | None = Field(
        default=None,
        min_length=1,
        description="Text evidence, by Stripe's evidence field name.",
    )
    use_draft: bool = Field(
        default=False,
        description=(
            "Submit the platform's own draft (`GET .../evidence-draft`), with Visa CE 3.0's "
            "`enhanced_evidence` when the dispute qualifies, instead of `evidence`."
        ),
    )
    submit: bool | None = Field(
        default=None,
        description=(
            "Submit to the bank now; otherwise only stage it. Default: false for `evidence`, "
            "true for `use_draft` (a draft is submitted, never staged)."
        ),
    )

    @model_validator(mode="after")
    def _evidence_or_draft(self) -> EvidenceIn:
        if self.use_draft == (self.evidence is not None):
            raise ValueError("Send either `evidence` or `use_draft: true`, not both or neither.")
        if self.use_draft and self.submit is False:
            raise ValueError("A draft is submitted, never staged: leave `submit` out.")
        return self


class Ce3PriorOut(BaseModel):
    charge: str
    created: int  # Unix time
    amount: int
    matched: list[str]  # Visa CE 3.0 data elements equal to the disputed payment's


class Ce3Out(BaseModel):
    eligible: bool
    reason: str
    prior_transactions: list[Ce3PriorOut]


class SubmissionOut(BaseModel):
    method: str  # `manual`, `smart_disputes` or `not_submitted`
    intended: str | None  # Stripe's `intended_submission_method`
    smart_disputes: bool  # Smart Disputes has submitted or will submit


class EvidenceDraftOut(BaseModel):
    evidence: dict[str, str]
    visa_ce3: Ce3Out
    submission: SubmissionOut


class NetworkRateOut(BaseModel):
    network: str
    settled: int
    fraud_reports: int
    disputes: int
    ratio: float
    threshold: float
    count_threshold: int
    status: Literal["ok", "warning", "over"]


class DisputeRatesOut(BaseModel):
    month: str
    networks: list[NetworkRateOut]


class DisputeList(BaseModel):
    items: list[DisputeOut]


class CustomerOut(BaseModel):
    stripe_customer_id: str
    user_id: str | None
    email: str | None
    plan: str
    subscription: SubscriptionSummaryOut | None
    credits_balance: int
    ledger: list[CustomerLedgerEntryOut]
    disputes: list[DisputeSummaryOut]
    # When Stripe said the customer was deleted (`customer.deleted`); the rest is kept.
    deleted_at: datetime | None = None
    # Checkout Sessions of this customer that expired unpaid (`checkout.session.expired`).
    expired_checkouts: int = 0


class WebhookEventOut(RowOut):
    id: str = Field(validation_alias="stripe_event_id")
    type: str
    status: EventStatus
    attempts: int
    last_error: str | None
    received_at: datetime
    processed_at: datetime | None
    api_version: str | None
    livemode: bool
    account: str | None
    created: datetime | None = Field(validation_alias="stripe_created")


class WebhookEventDetail(WebhookEventOut):
    payload: dict[str, Any]


class WebhookEventList(BaseModel):
    items: list[WebhookEventOut]


class ReplayAccepted(BaseModel):
    event_id: str
    status: EventStatus


class RunAccepted(BaseModel):
    run_id: int
    already_running: bool = Field(
        description="True when a run was already going: this is its id, and no other started."
    )


class RunOut(RunReport):
    """A stored reconciliation run: its report (`RunReport`), how it started and when."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    run_id: int = Field(validation_alias="id")
    status: Literal["running", "succeeded", "failed"]
    trigger: str
    started_at: datetime
    finished_at: datetime | None
