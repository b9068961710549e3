"""The console's sign-in: argon2 password hashes, server-side sessions in a cookie that is
HttpOnly, SameSite=Lax and (outside development) Secure, a CSRF token on every form, and
login attempts counted per account and per client address in Redis."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated

import redis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, Form, HTTPException, Request
from fastapi.responses import Response

from api.audit import Actor, client_ip
from api.deps import SessionDep, SettingsDep
from core.settings import Settings
from db import admins
from db.admins import SESSION_LIFETIME
from db.models import Admin, AdminSession

SESSION_COOKIE = "console_session"
LOGIN_CSRF_COOKIE = "console_login_csrf"
COOKIE_PATH = "/console"
CSRF_FIELD = "csrf_token"
MIN_PASSWORD_LENGTH = 12

# Failed or not, every attempt counts within the window: 10 per account stops a guesser of
# one password, 50 per address one who tries many accounts; a correct password resets the
# account's count.
LOGIN_WINDOW_SECONDS = 15 * 60
MAX_ATTEMPTS_PER_ACCOUNT = 10
MAX_ATTEMPTS_PER_ADDRESS = 50

_hasher = PasswordHasher()  # argon2id with the library's current defaults
# Verified against when no such admin exists: a wrong email takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(admin: Admin | None, password: str) -> bool:
    stored = admin.password_hash if admin is not None else None
    try:
        _hasher.verify(stored or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    return stored is not None


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def password_problem(password: str, repeated: str) -> str | None:
    """Why the new password is refused, or None."""
    if password != repeated:
        return "The two passwords differ."
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Use at least {MIN_PASSWORD_LENGTH} characters."
    if len(password) > 1024:
        return "Use at most 1,024 characters."
    return None


# --- Cookies ---------------------------------------------------------------------------------


def _secure(settings: Settings) -> bool:
    return settings.app_env != "development"


def set_session_cookie(response: Response, settings: Settings, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path=COOKIE_PATH,
        httponly=True,
        secure=_secure(settings),
        samesite="lax",
    )


def clear_session_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path=COOKIE_PATH, httponly=True, secure=_secure(settings), samesite="lax"
    )


def login_csrf_token(request: Request) -> tuple[str, bool]:
    """The pre-login form's token (double-submit: the cookie and the field must match), and
    whether it is new and must be set as a cookie."""
    existing = request.cookies.get(LOGIN_CSRF_COOKIE)
    if existing and len(existing) <= 100:
        return existing, False
    return secrets.token_urlsafe(32), True


def set_login_csrf_cookie(response: Response, settings: Settings, token: str) -> None:
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        path=COOKIE_PATH,
        httponly=True,
        secure=_secure(settings),
        samesite="lax",
    )


def tokens_match(expected: str | None, given: str | None) -> bool:
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def csrf_refused() -> HTTPException:
    return HTTPException(403, "The form's CSRF token is missing or stale; reload the page.")


# --- The signed-in admin -------------------------------------------------------------------


class LoginRequired(Exception):
    """No live session: the app's handler sends the browser to the login page."""


@dataclass(frozen=True, slots=True)
class ConsoleAdmin:
    admin: Admin
    session: AdminSession
    actor: Actor

    @property
    def csrf_token(self) -> str:
        return self.session.csrf_token


def current_admin(request: Request, db: SessionDep) -> ConsoleAdmin:
    """The admin whose live session the cookie names; otherwise `LoginRequired`."""
    token = request.cookies.get(SESSION_COOKIE)
    found = admins.live_session(db, token=token) if token and len(token) <= 100 else None
    if found is None:
        raise LoginRequired
    row, admin = found
    actor = Actor(name=admin.email, admin_id=admin.id, client_ip=client_ip(request))
    return ConsoleAdmin(admin=admin, session=row, actor=actor)


ConsoleAdminDep = Annotated[ConsoleAdmin, Depends(current_admin)]


def checked_form(
    admin: ConsoleAdminDep, csrf_token: Annotated[str, Form(max_length=200)] = ""
) -> ConsoleAdmin:
    """The admin behind a form POST whose CSRF token is the session's; 403 otherwise."""
    if not tokens_match(admin.csrf_token, csrf_token):
        raise csrf_refused()
    return admin


CheckedFormDep = Annotated[ConsoleAdmin, Depends(checked_form)]


# --- Login rate limit ------------------------------------------------------------------------


class LoginLimiter:
    """Fixed-window counters in Redis under the deployment's key prefix."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = f"{prefix}console:login:"

    def _keys(self, email: str, address: str | None) -> tuple[str, str]:
        # The account's key is a hash: Redis holds no email address.
        account = hashlib.sha256(admins.normalise_email(email).encode()).hexdigest()[:32]
        return f"{self._prefix}account:{account}", f"{self._prefix}ip:{address or 'unknown'}"

    def allow(self, email: str, address: str | None) -> bool:
        """Count this attempt; False when the account or the address is over its limit."""
        account_key, address_key = self._keys(email, address)
        pipe = self._redis.pipeline()
        for key in (account_key, address_key):
            pipe.incr(key)
            pipe.expire(key, LOGIN_WINDOW_SECONDS, nx=True)
        account_count, _, address_count, _ = pipe.execute()
        return (
            account_count <= MAX_ATTEMPTS_PER_ACCOUNT and address_count <= MAX_ATTEMPTS_PER_ADDRESS
        )

    def succeeded(self, email: str, address: str | None) -> None:
        self._redis.delete(self._keys(email, address)[0])


def login_limiter(request: Request, settings: SettingsDep) -> LoginLimiter:
    state = request.app.state
    if getattr(state, "console_login_limiter", None) is None:
        client = redis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=2, socket_timeout=2
        )
        state.console_login_limiter = LoginLimiter(client, settings.broker_key_prefix)
    return state.console_login_limiter


LoginLimiterDep = Annotated[LoginLimiter, Depends(login_limiter)]
