"""The user billing API the host application calls for its signed-in users: info, Checkout,
plan changes, cancellation, the customer portal, invoices and credits.

Local state changes only from Stripe's own objects: what Stripe answers here goes through the
event handlers' functions, and the webhooks that follow find it already done."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Header, HTTPException, Query
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from api.auth import User, UserDep
from api.billing import checkout, credits, customers, subscriptions
from api.billing.idempotent_requests import Answer, KeyReused, earlier_answer, keep_answer
from api.deps import CatalogueDep, SessionDep, SettingsDep, StripeDep
from api.routes.billing_models import (
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
    SubscriptionOut,
)
from core.plans import FREE_PLAN, Catalogue, CreditPack, Plan
from core.settings import Settings
from db import ledger
from db.accounts import account_of_user
from db.invoices import invoices_page
from db.models import Account, CreditEntry, Invoice, Subscription
from db.subscriptions import latest_subscription, live_subscription

MAX_PAGE = 100
MAX_CURSOR = 2**63 - 1  # a bigint id
MAX_KEY_LENGTH = 255


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorOut} for code in (401, 503, *codes)}


def _replayable(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The answers of a route that keeps its first answer per `Idempotency-Key`."""
    replayed = {
        "description": "`true` when this is the first answer again, for a repeated key.",
        "schema": {"type": "string", "enum": ["true"]},
    }
    return {200: {"headers": {"Idempotent-Replayed": replayed}}, **_errors(*codes)}


router = APIRouter(prefix="/api/billing", tags=["billing"])


def idempotency_key(
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Retrying with the same key repeats nothing: the first answer is "
            "returned. Up to 255 characters.",
        ),
    ] = None,
) -> str | None:
    if key is not None and not (0 < len(key) <= MAX_KEY_LENGTH and key.isprintable()):
        raise HTTPException(
            400, "The Idempotency-Key header must be 1 to 255 printable characters."
        )
    return key


IdempotencyKeyDep = Annotated[str | None, Depends(idempotency_key)]
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
    body: CheckoutRequest,
    user: UserDep,
    session: SessionDep,
    settings: SettingsDep,
    catalogue: CatalogueDep,
    client: StripeDep,
    key: IdempotencyKeyDep,
) -> CheckoutOut:
    """A Stripe Checkout Session for a paid plan or a credit pack; send the user to `url`.

    Without an `Idempotency-Key`, requests for the same plan or pack within a minute
    (CHECKOUT_IDEMPOTENCY_WINDOW_SECONDS) get the same session."""
    plan = pack = None
    if body.plan is not None:
        plan = _paid_plan(body.plan, catalogue, settings)
        account = account_of_user(session, user_id=user.id)
        current = live_subscription(session, account_id=account.id) if account else None
        if current is not None:
            raise HTTPException(
                409,
                f"You already subscribe to the {current.plan} plan; change it with "
                "POST /api/billing/subscription/change.",
            )
    else:
        pack = catalogue.pack(body.pack)
        if pack is None:
            known = ", ".join(catalogue.packs) or "none"
            raise HTTPException(400, f"Unknown credit pack {body.pack!r}; the packs are {known}.")
    account = customers.get_or_create_customer(session, client, user=user)
    # The customer is Stripe's now: keep it whatever happens to the Checkout call.
    session.commit()
    opened = checkout.create_checkout(
        client,
        settings,
        user=user,
        customer_id=account.stripe_customer_id,
        plan=plan,
        pack=pack,
        idempotency_key=checkout.checkout_idempotency_key(
            user=user,
            customer_id=account.stripe_customer_id,
            item=_item_name(plan=plan, pack=pack),
            header_key=key,
            window_seconds=settings.checkout_idempotency_window_seconds,
        ),
    )
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
    settings: SettingsDep,
    catalogue: CatalogueDep,
    client: StripeDep,
    key: IdempotencyKeyDep,
) -> Any:
    """Move the subscription to another paid plan; Stripe prorates and charges the difference
    now (a declined card is 402 and changes nothing). With an `Idempotency-Key`, a retry
    gets the first answer."""
    if body.plan == FREE_PLAN:
        raise HTTPException(
            400, "To move to the free plan, cancel: POST /api/billing/subscription/cancel."
        )
    plan = _paid_plan(body.plan, catalogue, settings)
    request = body.model_dump()
    if key is not None:
        earlier = _earlier(
            session, user=user, operation="subscription.change", key=key, request=request
        )
        if earlier is not None:
            return earlier
    account, current = _live_subscription_of(session, user_id=user.id)
    if current.plan == plan.id:
        raise HTTPException(409, f"You are already on the {plan.id} plan.")
    try:
        result = subscriptions.change_plan(
            session, client, account=account, subscription=current, plan=plan, idempotency_key=key
        )
    except subscriptions.AlreadyOnPlan:
        raise HTTPException(409, f"You are already on the {plan.id} plan.") from None
    except subscriptions.NoLongerLive:
        raise _no_live_subscription() from None
    return _answer(
        session,
        user=user,
        operation="subscription.change",
        key=key,
        request=request,
        subscription=result.subscription,
    )


@router.post(
    "/subscription/cancel", response_model=SubscriptionOut, responses=_replayable(400, 404, 409)
)
def cancel_subscription(
    user: UserDep,
    session: SessionDep,
    client: StripeDep,
    key: IdempotencyKeyDep,
    body: CancelRequest | None = None,
) -> Any:
    """Cancel at the end of the paid period (the default), or at once. With an
    `Idempotency-Key`, a retry gets the first answer even after the subscription ended."""
    request = (body or CancelRequest()).model_dump()
    if key is not None:
        earlier = _earlier(
            session, user=user, operation="subscription.cancel", key=key, request=request
        )
        if earlier is not None:
            return earlier
    account, current = _live_subscription_of(session, user_id=user.id)
    try:
        result = subscriptions.cancel_subscription(
            session,
            client,
            account=account,
            subscription=current,
            at_period_end=request["at_period_end"],
        )
    except subscriptions.NoLongerLive:
        raise _no_live_subscription() from None
    return _answer(
        session,
        user=user,
        operation="subscription.cancel",
        key=key,
        request=request,
        subscription=result.subscription,
    )


@router.post("/portal", response_model=PortalOut, responses=_errors(400, 404))
def open_customer_portal(
    user: UserDep, session: SessionDep, settings: SettingsDep, client: StripeDep
) -> PortalOut:
    """A Stripe customer portal session (payment methods, invoices); send the user to `url`."""
    account = customers.existing_customer(session, client, user=user)
    if account is None:
        raise HTTPException(404, "You have no billing account yet: start with a Checkout.")
    session.commit()  # what Stripe said of the customer
    portal = client.v1.billing_portal.sessions.create(
        params={"customer": account.stripe_customer_id, "return_url": settings.app_billing_url}
    )
    return PortalOut(url=portal.url)


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
        items=[InvoiceOut.of(row) for row in rows], has_more=more, next_cursor=next_cursor
    )


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
        ledger=[LedgerEntryOut.of(row) for row in rows],
        has_more=more,
        next_cursor=next_cursor,
    )


@router.post("/credits/consume", response_model=ConsumeOut, responses=_replayable(400, 402, 409))
def consume_credits(
    body: ConsumeRequest,
    user: UserDep,
    session: SessionDep,
    settings: SettingsDep,
    catalogue: CatalogueDep,
    key: IdempotencyKeyDep,
) -> Any:
    """Spend credits, once per `Idempotency-Key` (required). A retry with the same key gets
    the first answer (header `Idempotent-Replayed: true`); the same key with another body is
    409; a short balance is 402."""
    if key is None:
        raise HTTPException(400, "The Idempotency-Key header is required to spend credits.")
    try:
        answer = credits.consume_credits(
            session,
            user=user,
            key=key,
            amount=body.amount,
            reason=body.reason,
            catalogue=catalogue,
            settings=settings,
        )
    except KeyReused:
        raise _key_reused() from None
    session.commit()
    return _reply(answer)


def _paid_plan(plan_id: str, catalogue: Catalogue, settings: Settings) -> Plan:
    plan = catalogue.plan(plan_id)
    if plan is None or plan.id == FREE_PLAN:
        paid = ", ".join(p for p in catalogue.plans if p != FREE_PLAN)
        raise HTTPException(400, f"Unknown plan {plan_id!r}; the paid plans are {paid}.")
    if plan.price_id is None:
        mode = "TEST" if settings.stripe_test_mode else "LIVE"
        variable = f"STRIPE_PRICE_{plan.id.upper()}_{mode}"
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


def _key_reused() -> HTTPException:
    return HTTPException(
        409, "This Idempotency-Key was already used with a different request body."
    )


def _reply(answer: Answer) -> JSONResponse:
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else {}
    return JSONResponse(answer.body, status_code=answer.status_code, headers=headers)


def _earlier(
    session: Session, *, user: User, operation: str, key: str, request: dict[str, Any]
) -> JSONResponse | None:
    """The answer this key already had, or None (and the key held) for a first request."""
    try:
        earlier = earlier_answer(
            session, user_id=user.id, operation=operation, key=key, request=request
        )
    except KeyReused:
        raise _key_reused() from None
    return None if earlier is None else _reply(earlier)


def _answer(
    session: Session,
    *,
    user: User,
    operation: str,
    key: str | None,
    request: dict[str, Any],
    subscription: Subscription,
) -> JSONResponse:
    """Commit Stripe's answer as stored, kept under the key when there is one."""
    answer = Answer(200, SubscriptionOut.of(subscription).model_dump(mode="json"))
    if key is not None:
        keep_answer(
            session, user_id=user.id, operation=operation, key=key, request=request, answer=answer
        )
    session.commit()
    return _reply(answer)
