"""The host application's users: a bearer JWT (HS256, `AUTH_JWT_SECRET`) names the user.

The host application mints the token; `sub` is its user id and `email` the address Stripe
gets when the platform creates the user's customer. PyJWT checks the signature, the
algorithm and the expiry, which every token must carry (a token without one would be good
forever once leaked); `iss` and `aud` too when AUTH_JWT_ISSUER / AUTH_JWT_AUDIENCE are set.
With no audience configured, a token that names one is refused (PyJWT's rule): it was
minted for some other service."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import jwt
from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import SettingsDep

ALGORITHMS = ["HS256"]  # a fixed list: the token's own `alg` header never chooses
# Host and platform clocks differ a little; a token a few seconds past `exp` is still good.
LEEWAY_SECONDS = 30
# A user id is an opaque key of the host application, stored and sent to Stripe as metadata;
# a longer `sub` is a mistake or an attack, not an id.
MAX_USER_ID_LENGTH = 255

_bearer = HTTPBearer(
    auto_error=False,
    description="A JWT the host application signs with AUTH_JWT_SECRET (HS256): "
    "`sub` is the user id, `email` the user's address.",
)


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str | None


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(401, reason, {"WWW-Authenticate": "Bearer"})


def current_user(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The signed-in user, or 401; 503 while AUTH_JWT_SECRET is unset (development)."""
    if not settings.auth_jwt_secret:
        raise HTTPException(503, "The billing API is off: AUTH_JWT_SECRET is not set.")
    if credentials is None:
        raise _unauthorized("A bearer token is required.")
    try:
        claims = jwt.decode(
            credentials.credentials,
            settings.auth_jwt_secret,
            algorithms=ALGORITHMS,
            options={"require": ["sub", "exp"]},
            leeway=LEEWAY_SECONDS,
            issuer=settings.auth_jwt_issuer or None,
            audience=settings.auth_jwt_audience or None,
        )
    except jwt.ExpiredSignatureError:
        raise _unauthorized("The bearer token has expired.") from None
    except jwt.InvalidTokenError:
        raise _unauthorized("The bearer token is invalid.") from None
    user_id = claims.get("sub")
    if not isinstance(user_id, str) or not user_id.strip() or not user_id.isprintable():
        raise _unauthorized("The bearer token names no user (`sub`).")
    if len(user_id) > MAX_USER_ID_LENGTH:
        raise _unauthorized(f"The bearer token's `sub` is over {MAX_USER_ID_LENGTH} characters.")
    email = claims.get("email")
    usable = isinstance(email, str) and email.isprintable() and "@" in email
    return User(id=user_id, email=email if usable else None)


UserDep = Annotated[User, Depends(current_user)]
