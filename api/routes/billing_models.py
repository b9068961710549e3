"""The request and response bodies of the user billing API, as `/docs` shows them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from db.models import CreditEntry, Invoice, Subscription


class ErrorOut(BaseModel):
    detail: str = Field(description="A short reason, fit to show a developer.")


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


class SubscriptionOut(BaseModel):
    id: str
    status: str
    plan: str | None
    price_id: str | None
    current_period_end: datetime | None
    cancel_at_period_end: bool

    @classmethod
    def of(cls, row: Subscription) -> SubscriptionOut:
        return cls(
            id=row.stripe_subscription_id,
            status=row.status,
            plan=row.plan,
            price_id=row.price_id,
            current_period_end=row.current_period_end,
            cancel_at_period_end=row.cancel_at_period_end,
        )


class PortalOut(BaseModel):
    url: str = Field(description="Stripe's customer portal: send the user there.")


class InvoiceOut(BaseModel):
    id: str
    number: str | None
    status: str | None
    currency: str
    amount_due: int = Field(description="Minor units of `currency`.")
    amount_paid: int
    plan: str | None
    period_start: datetime | None
    period_end: datetime | None
    created: datetime | None
    hosted_invoice_url: str | None
    invoice_pdf: str | None

    @classmethod
    def of(cls, row: Invoice) -> InvoiceOut:
        return cls(
            id=row.stripe_invoice_id,
            number=row.number,
            status=row.status,
            currency=row.currency,
            amount_due=row.amount_due,
            amount_paid=row.amount_paid,
            plan=row.plan,
            period_start=row.period_start,
            period_end=row.period_end,
            created=row.stripe_created,
            hosted_invoice_url=row.hosted_invoice_url,
            invoice_pdf=row.invoice_pdf,
        )


class InvoicePage(BaseModel):
    items: list[InvoiceOut]
    has_more: bool
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class LedgerEntryOut(BaseModel):
    id: int
    amount: int = Field(description="Credits: grants positive; holds, refunds, spending negative.")
    kind: str
    description: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: CreditEntry) -> LedgerEntryOut:
        return cls(
            id=row.id,
            amount=row.amount,
            kind=row.kind,
            description=row.description,
            created_at=row.created_at,
        )


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
