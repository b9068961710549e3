"""FastAPI dependencies: settings, a database session per request, the Stripe client, admin
authentication."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Annotated

import stripe
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from core.plans import Catalogue
from core.settings import Settings
from db.session import session_factory


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
        if not settings.stripe_enabled:
            raise HTTPException(503, "Stripe is off: STRIPE_ENABLED is false.")
        raise HTTPException(
            503, f"Stripe is not configured: {settings.stripe_secret_key_variable} is not set."
        )
    return client


StripeDep = Annotated[stripe.StripeClient, Depends(get_stripe)]

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
