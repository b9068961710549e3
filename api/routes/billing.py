"""The user billing API the host application calls for its signed-in users: info, Checkout,
plan changes, cancellation, the customer portal, invoices and credits.

Local state changes only from Stripe's own objects: what Stripe answers here goes through the
same `billing` functions as the events, and the webhooks that follow find it already done.
The routes parse, authorise, call `billing` and map its answers."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, HTTPException, Query, Request, Response
from sqlalchemy.orm import Session

from api.auth import UserDep
from api.client_info import buyer_device, buyer_ip
from api.deps import ArchiveStoreDep, BillingDep, NoNulParamsDep, SessionDep, StripeBillingDep
from api.idempotent_requests import REPLAYED_HEADER, Answer, IdempotencyKeyDep, IdempotentDep
from api.invoice_pdfs import archived_pdf_response
from api.schemas import (
    VALIDATION_ERROR,
    BillingInfo,
    CancelRequest,
    CheckoutOut,
    CheckoutRequest,
    ConsumeOut,
    ConsumeRequest,
    CreditsPage,
    ErrorOut,
    InvoiceOut,
    InvoicePage,
    LedgerEntryOut,
    PlanChangeRequest,
    PortalOut,
    SubscriptionHistory,
    SubscriptionOut,
)
from api.subscription_history import user_history
from billing import checkout, credits, customers, plan_changes
from billing.context import BillingContext
from core.plans import FREE_PLAN, CreditPack, Plan
from db import ledger
from db.accounts import account_of_user
from db.invoice_archives import invoice_of_user
from db.invoices import invoices_page
from db.models import Account, CreditEntry, Invoice, Subscription
from db.purchases import record_checkout_context
from db.subscriptions import latest_subscription, live_subscription

MAX_PAGE = 100
MAX_CURSOR = 2**63 - 1  # a bigint id
CONSUME = "credits.consume"  # the idempotency keys' operation, as stored since the start


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorOut} for code in (401, 503, *codes)}


def _replayable(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The answers of a route that keeps its first answer per `Idempotency-Key`."""
    replayed = {
        "description": "`true` when this is the first answer again, for a repeated key.",
        "schema": {"type": "string", "enum": ["true"]},
    }
    return {200: {"headers": {REPLAYED_HEADER: replayed}}, **_errors(*codes)}


router = APIRouter(prefix="/api/billing", tags=["billing"], responses=VALIDATION_ERROR)


CursorQuery = Annotated[
    int | None, Query(ge=1, le=MAX_CURSOR, description="`next_cursor` of the last page")
]
LimitQuery = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Row = TypeVar("Row", Invoice, CreditEntry)


@router.get("/info", response_model=BillingInfo, responses=_errors())
def billing_info(user: UserDep, session: SessionDep) -> BillingInfo:
    """The user's plan, subscription status and period, and credit balance."""
    account = account_of_user(session, user_id=user.id)
    if account is None:
        return BillingInfo(
            plan=FREE_PLAN,
            status=None,
            current_period_end=None,
            cancel_at_period_end=False,
            credits_balance=0,
        )
    subscription = live_subscription(session, account_id=account.id) or latest_subscription(
        session, account_id=account.id
    )
    return BillingInfo(
        plan=account.plan,
        status=subscription.status if subscription else None,
        current_period_end=subscription.current_period_end if subscription else None,
        cancel_at_period_end=bool(subscription and subscription.cancel_at_period_end),
        credits_balance=ledger.balance(session, account_id=account.id),
    )


@router.post("/checkout", response_model=CheckoutOut, responses=_errors(400, 402, 409))
def create_checkout_session(
    request: Request,
    body: CheckoutRequest,
    user: UserDep,
    session: SessionDep,
    ctx: StripeBillingDep,
    key: IdempotencyKeyDep,
) -> CheckoutOut:
    """A Stripe Checkout Session for a paid plan or a credit pack; send the user to `url`.

    Without an `Idempotency-Key`, requests for the same plan or pack within a minute
    (CHECKOUT_IDEMPOTENCY_WINDOW_SECONDS) get the same session. The buyer's IP (behind
    TRUSTED_PROXY_HOPS proxies) and an optional `X-Device-Fingerprint` header are kept with
    the payment for dispute evidence."""
    device = buyer_device(request)
    plan = pack = None
    if body.plan is not None:
        plan = _paid_plan(body.plan, ctx)
        account = account_of_user(session, user_id=user.id)
        current = live_subscription(session, account_id=account.id) if account else None
        if current is not None:
            raise HTTPException(
                409,
                f"You already subscribe to the {current.plan} plan; change it with "
                "POST /api/billing/subscription/change.",
            )
    else:
        pack = ctx.catalogue.pack(body.pack)
        if pack is None:
            known = ", ".join(ctx.catalogue.packs) or "none"
            raise HTTPException(400, f"Unknown credit pack {body.pack!r}; the packs are {known}.")
    account = customers.get_or_create_customer(session, ctx, user_id=user.id, email=user.email)
    # The customer is Stripe's now: keep it whatever happens to the Checkout call.
    session.commit()
    opened = checkout.create_checkout(
        ctx,
        user_id=user.id,
        customer_id=account.stripe_customer_id,
        plan=plan,
        pack=pack,
        idempotency_key=checkout.checkout_idempotency_key(
            ctx,
            user_id=user.id,
            customer_id=account.stripe_customer_id,
            item=_item_name(plan=plan, pack=pack),
            header_key=key,
        ),
    )
    record_checkout_context(
        session,
        checkout_session_id=opened.id,
        user_id=user.id,
        ip_address=buyer_ip(request, hops=ctx.settings.trusted_proxy_hops),
        device_fingerprint=device,
    )
    session.commit()
    return CheckoutOut(url=opened.url, session_id=opened.id)


@router.post(
    "/subscription/change",
    response_model=SubscriptionOut,
    responses=_replayable(400, 402, 404, 409),
)
def change_subscription_plan(
    body: PlanChangeRequest,
    user: UserDep,
    session: SessionDep,
    ctx: StripeBillingDep,
    idempotent: IdempotentDep,
) -> Any:
    """Move the subscription to another paid plan; Stripe prorates and charges the difference
    now (a declined card is 402 and changes nothing). With an `Idempotency-Key`, a retry
    gets the first answer."""
    if body.plan == FREE_PLAN:
        raise HTTPException(
            400, "To move to the free plan, cancel: POST /api/billing/subscription/cancel."
        )
    plan = _paid_plan(body.plan, ctx)
    if (earlier := idempotent.replay("subscription.change", body.model_dump())) is not None:
        return earlier
    account, current = _live_subscription_of(session, user_id=user.id)
    if current.plan == plan.id:
        raise HTTPException(409, f"You are already on the {plan.id} plan.")
    try:
        result = plan_changes.change_plan(
            session,
            ctx,
            account=account,
            subscription=current,
            plan=plan,
            idempotency_key=idempotent.key,
        )
    except plan_changes.AlreadyOnPlan:
        raise HTTPException(409, f"You are already on the {plan.id} plan.") from None
    except plan_changes.NoLongerLive:
        raise _no_live_subscription() from None
    response = idempotent.keep(_subscription_answer(result.subscription))
    session.commit()
    return response


@router.post(
    "/subscription/cancel", response_model=SubscriptionOut, responses=_replayable(400, 404, 409)
)
def cancel_subscription(
    user: UserDep,
    session: SessionDep,
    ctx: StripeBillingDep,
    idempotent: IdempotentDep,
    body: CancelRequest | None = None,
) -> Any:
    """Cancel at the end of the paid period (the default), or at once. With an
    `Idempotency-Key`, a retry gets the first answer even after the subscription ended."""
    request = body or CancelRequest()
    if (earlier := idempotent.replay("subscription.cancel", request.model_dump())) is not None:
        return earlier
    account, current = _live_subscription_of(session, user_id=user.id)
    try:
        result = plan_changes.cancel_subscription(
            session,
            ctx,
            account=account,
            subscription=current,
            at_period_end=request.at_period_end,
        )
    except plan_changes.NoLongerLive:
        raise _no_live_subscription() from None
    response = idempotent.keep(_subscription_answer(result.subscription))
    session.commit()
    return response


@router.post("/portal", response_model=PortalOut, responses=_errors(400, 404))
def open_customer_portal(user: UserDep, session: SessionDep, ctx: StripeBillingDep) -> PortalOut:
    """A Stripe customer portal session (payment methods, invoices); send the user to `url`."""
    account = customers.existing_customer(session, ctx, user_id=user.id)
    if account is None:
        raise HTTPException(404, "You have no billing account yet: start with a Checkout.")
    session.commit()  # what Stripe said of the customer
    return PortalOut(url=customers.portal_url(ctx, account=account))


@router.get("/invoices", response_model=InvoicePage, responses=_errors())
def list_invoices(
    user: UserDep, session: SessionDep, cursor: CursorQuery = None, limit: LimitQuery = 20
) -> InvoicePage:
    """The user's invoices, newest first, with Stripe's hosted page and PDF."""
    account = account_of_user(session, user_id=user.id)
    if account is None:
        return InvoicePage(items=[], has_more=False, next_cursor=None)
    rows, more, next_cursor = _page(
        invoices_page(session, account_id=account.id, limit=limit + 1, before_id=cursor), limit
    )
    return InvoicePage(
        items=[InvoiceOut.model_validate(row) for row in rows],
        has_more=more,
        next_cursor=next_cursor,
    )


PDF_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/pdf": {}}, "description": "The archived PDF."}
}


@router.get(
    "/invoices/{invoice_id}/pdf",
    response_class=Response,
    responses={**PDF_ANSWER, **_errors(404)},
    dependencies=[NoNulParamsDep],
)
def invoice_pdf(
    user: UserDep, session: SessionDep, store: ArchiveStoreDep, invoice_id: str
) -> Response:
    """One of the user's invoices as archived (Stripe's PDF, or the platform's own where
    Stripe's could not be kept); 404 for an invoice of anyone else, or not archived yet."""
    if invoice_of_user(session, invoice_id=invoice_id, user_id=user.id) is None:
        raise HTTPException(404, f"No invoice {invoice_id} for this user.")
    return archived_pdf_response(session, store, invoice_id=invoice_id)


@router.get("/subscription/history", response_model=SubscriptionHistory, responses=_errors())
def subscription_history(
    user: UserDep, session: SessionDep, cursor: CursorQuery = None, limit: LimitQuery = 50
) -> SubscriptionHistory:
    """Every change of the user's subscriptions (plan, status, cancellation, period),
    newest first."""
    account = account_of_user(session, user_id=user.id)
    if account is None:
        return SubscriptionHistory(items=[], has_more=False, next_cursor=None)
    return user_history(session, account_id=account.id, limit=limit, cursor=cursor)


@router.get("/credits", response_model=CreditsPage, responses=_errors())
def list_credits(
    user: UserDep, session: SessionDep, cursor: CursorQuery = None, limit: LimitQuery = 50
) -> CreditsPage:
    """The credit balance and the ledger that makes it, newest first."""
    account = account_of_user(session, user_id=user.id)
    if account is None:
        return CreditsPage(credits_balance=0, ledger=[], has_more=False, next_cursor=None)
    rows, more, next_cursor = _page(
        ledger.entries_page(session, account_id=account.id, limit=limit + 1, before_id=cursor),
        limit,
    )
    return CreditsPage(
        credits_balance=ledger.balance(session, account_id=account.id),
        ledger=[LedgerEntryOut.model_validate(row) for row in rows],
        has_more=more,
        next_cursor=next_cursor,
    )


@router.post("/credits/consume", response_model=ConsumeOut, responses=_replayable(400, 402, 409))
def consume_credits(
    body: ConsumeRequest,
    user: UserDep,
    session: SessionDep,
    ctx: BillingDep,
    idempotent: IdempotentDep,
) -> Any:
    """Spend credits, once per `Idempotency-Key` (required). A retry with the same key gets
    the first answer (header `Idempotent-Replayed: true`); the same key with another body is
    409; a short balance is 402."""
    if idempotent.key is None:
        raise HTTPException(400, "The Idempotency-Key header is required to spend credits.")
    if (earlier := idempotent.replay(CONSUME, body.model_dump())) is not None:
        return earlier
    spent = credits.spend_credits(
        session, ctx, user_id=user.id, key=idempotent.key, amount=body.amount, reason=body.reason
    )
    response = idempotent.keep(_spend_answer(spent))
    session.commit()
    return response


def _spend_answer(spent: credits.Spent | credits.Short) -> Answer:
    if isinstance(spent, credits.Short):
        detail = (
            f"Not enough credits: the balance is {spent.balance}, the request needs {spent.amount}."
        )
        return Answer(402, {"detail": detail})
    return Answer(
        200,
        {
            "id": spent.entry.id,
            "amount": -spent.entry.amount,
            "reason": spent.entry.description,
            "credits_balance": spent.balance,
            "created_at": spent.entry.created_at.isoformat(),
        },
    )


def _paid_plan(plan_id: str, ctx: BillingContext) -> Plan:
    catalogue = ctx.catalogue
    plan = catalogue.plan(plan_id)
    if plan is None or plan.id == FREE_PLAN:
        paid = ", ".join(p for p in catalogue.plans if p != FREE_PLAN)
        raise HTTPException(400, f"Unknown plan {plan_id!r}; the paid plans are {paid}.")
    if plan.price_id is None:
        variable = ctx.settings.price_variable(plan.id)
        raise HTTPException(503, f"The {plan.id} plan has no Stripe price: {variable} is not set.")
    return plan


def _live_subscription_of(session: Session, *, user_id: str) -> tuple[Account, Subscription]:
    account = account_of_user(session, user_id=user_id)
    current = live_subscription(session, account_id=account.id) if account else None
    if account is None or current is None:
        raise _no_live_subscription()
    return account, current


def _no_live_subscription() -> HTTPException:
    return HTTPException(
        404, "You have no active subscription; start one with POST /api/billing/checkout."
    )


def _page(rows: list[Row], limit: int) -> tuple[list[Row], bool, str | None]:
    """A page of `limit` rows out of `limit + 1` read: (rows, more after them, the cursor)."""
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, more, str(rows[-1].id) if more else None


def _item_name(*, plan: Plan | None, pack: CreditPack | None) -> str:
    if plan is not None:
        return f"plan:{plan.id}"
    assert pack is not None  # the request model allows exactly one
    return f"pack:{pack.id}"


def _subscription_answer(subscription: Subscription) -> Answer:
    """The subscription as Stripe's answer left it."""
    return Answer(200, SubscriptionOut.model_validate(subscription).model_dump(mode="json"))
