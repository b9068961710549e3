"""FastAPI dependencies: settings, a database session per request, the Stripe client, the
billing rules' context, the task publisher, admin authentication."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from typing import Annotated

import stripe
from celery import Celery
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from billing.context import BillingContext
from core.object_store import ObjectStore, open_store
from core.plans import Catalogue
from core.settings import Settings
from core.stripe_client import stripe_unavailable_reason
from core.task_names import SEND_EMAIL
from db.session import session_factory

# The API sends worker tasks by name through a publisher app; it imports no task code.
from tasks.celery_app import publisher_app


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def get_catalogue_dep(request: Request) -> Catalogue:
    return request.app.state.catalogue


CatalogueDep = Annotated[Catalogue, Depends(get_catalogue_dep)]


def get_db(settings: SettingsDep) -> Iterator[Session]:
    """A session for the request; the endpoint commits what it means to keep."""
    with session_factory(settings.sqlalchemy_url)() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db)]


def get_stripe(request: Request, settings: SettingsDep) -> stripe.StripeClient:
    """The app's Stripe client; 503 while Stripe is off or has no key (development)."""
    client: stripe.StripeClient | None = request.app.state.stripe
    if client is None:
        raise HTTPException(503, stripe_unavailable_reason(settings))
    return client


StripeDep = Annotated[stripe.StripeClient, Depends(get_stripe)]


def publisher(app: FastAPI) -> Celery:
    """The app's Celery publisher, on its settings' broker, made on first use."""
    state = app.state
    if getattr(state, "publisher", None) is None:
        state.publisher = publisher_app(state.settings)
    return state.publisher


def get_publisher(request: Request) -> Celery:
    return publisher(request.app)


PublisherDep = Annotated[Celery, Depends(get_publisher)]


def _email_sender(app: FastAPI) -> Callable[[int], None]:
    def send(email_log_id: int) -> None:
        publisher(app).send_task(SEND_EMAIL, args=[email_log_id])

    return send


def get_archive_store(request: Request) -> ObjectStore:
    """The invoice archive's store (INVOICE_ARCHIVE_URL), opened on first use."""
    state = request.app.state
    if getattr(state, "archive_store", None) is None:
        settings: Settings = state.settings
        state.archive_store = open_store(
            settings.invoice_archive_url, endpoint_url=settings.s3_endpoint_url
        )
    return state.archive_store


ArchiveStoreDep = Annotated[ObjectStore, Depends(get_archive_store)]


def get_billing(request: Request) -> BillingContext:
    """The billing rules' context: this app's settings, catalogue and Stripe client (None
    while Stripe is off), and its emails sent through `emails.send`."""
    state = request.app.state
    return BillingContext(
        settings=state.settings,
        catalogue=state.catalogue,
        stripe=state.stripe,
        send_email=_email_sender(request.app),
    )


BillingDep = Annotated[BillingContext, Depends(get_billing)]


def get_stripe_billing(ctx: BillingDep, _client: StripeDep) -> BillingContext:
    """The billing context of a route that calls Stripe: 503 while Stripe is off."""
    return ctx


StripeBillingDep = Annotated[BillingContext, Depends(get_stripe_billing)]

_bearer = HTTPBearer(auto_error=False)


def require_admin(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    if not settings.admin_api_token:
        raise HTTPException(503, "The admin API is off: ADMIN_API_TOKEN is not set.")
    # compare_digest: the time taken must not tell how much of a guess was right.
    if credentials is None or not hmac.compare_digest(
        credentials.credentials.encode(), settings.admin_api_token.encode()
    ):
        raise HTTPException(
            401, "A valid admin bearer token is required.", {"WWW-Authenticate": "Bearer"}
        )


AdminDep = Depends(require_admin)


def refuse_nul_in_parameters(request: Request) -> None:
    """422 for a NUL character in a path or query parameter: PostgreSQL text cannot hold
    one, so a lookup by it failed as a 500 (the API fuzzer sent `?status=%00`)."""
    for where, items in (
        ("path", request.path_params.items()),
        ("query", request.query_params.multi_items()),
    ):
        for name, value in items:
            if "\x00" in str(value):
                raise HTTPException(422, f"{where}.{name}: NUL characters are not allowed")


NoNulParamsDep = Depends(refuse_nul_in_parameters)
