"""Signing in and out, and setting a password through a one-time link."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from api.audit import client_ip
from api.console.rendering import render
from api.console.security import (
    MIN_PASSWORD_LENGTH,
    SESSION_COOKIE,
    CheckedFormDep,
    LoginLimiterDep,
    clear_session_cookie,
    csrf_refused,
    hash_password,
    login_csrf_token,
    needs_rehash,
    password_matches,
    password_problem,
    set_login_csrf_cookie,
    set_session_cookie,
    tokens_match,
)
from api.deps import SessionDep, SettingsDep
from core.redaction import redact_email
from db import admins
from db.admin_actions import record_action
from db.models import AdminActionKind

log = logging.getLogger(__name__)

router = APIRouter(prefix="/console", include_in_schema=False)

FormText = Annotated[str, Form(max_length=1024)]


def _safe_next(target: str) -> str:
    """Only a console path: never another site (`//evil`), never a scheme."""
    if target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/console/"


def _login_page(
    request: Request,
    settings: SettingsDep,
    *,
    next_url: str,
    email: str = "",
    error: str | None = None,
    flash: str | None = None,
    status_code: int = 200,
) -> Response:
    token, new = login_csrf_token(request)
    response = render(
        request,
        "auth/login.html",
        {"csrf_token": token, "next": next_url, "email": email, "error": error, "flash": flash},
        status_code=status_code,
    )
    if new:
        set_login_csrf_cookie(response, settings, token)
    return response


@router.get("/login")
def login_form(request: Request, settings: SettingsDep, next: str = "/console/") -> Response:
    flash = "Your password is set; sign in." if request.query_params.get("set") else None
    return _login_page(request, settings, next_url=_safe_next(next), flash=flash)


@router.post("/login")
def login(
    request: Request,
    settings: SettingsDep,
    db: SessionDep,
    limiter: LoginLimiterDep,
    email: FormText = "",
    password: FormText = "",
    csrf_token: FormText = "",
    next: FormText = "/console/",
) -> Response:
    """Check the password; on success a new session and its cookie, and an audit row."""
    if not tokens_match(request.cookies.get("console_login_csrf"), csrf_token):
        raise csrf_refused()
    address = client_ip(request)
    if not limiter.allow(email, address):
        log.warning("console login refused: too many attempts for %s", redact_email(email))
        return _login_page(
            request,
            settings,
            next_url=_safe_next(next),
            email=email,
            error="Too many sign-in attempts; wait 15 minutes and try again.",
            status_code=429,
        )
    admin = admins.find_admin(db, email=email)
    if not password_matches(admin, password) or admin is None:
        if admin is not None:
            record_action(
                db,
                actor=admin.email,
                admin_id=admin.id,
                action=AdminActionKind.LOGIN_FAILED,
                target=None,
                client_ip=address,
            )
            db.commit()
        return _login_page(
            request,
            settings,
            next_url=_safe_next(next),
            email=email,
            error="That email and password do not match.",
            status_code=401,
        )
    limiter.succeeded(email, address)
    if admin.password_hash and needs_rehash(admin.password_hash):
        admin.password_hash = hash_password(password)
    admins.delete_expired_sessions(db)
    token, _ = admins.open_session(db, admin=admin)
    record_action(
        db,
        actor=admin.email,
        admin_id=admin.id,
        action=AdminActionKind.LOGIN,
        target=None,
        client_ip=address,
    )
    db.commit()
    response = RedirectResponse(_safe_next(next), status_code=303)
    set_session_cookie(response, settings, token)
    return response


@router.post("/logout")
def logout(request: Request, settings: SettingsDep, db: SessionDep, me: CheckedFormDep) -> Response:
    me.actor.record(db, action=AdminActionKind.LOGOUT, target=None)
    admins.close_session(db, token=request.cookies.get(SESSION_COOKIE, ""))
    db.commit()
    response = RedirectResponse("/console/login", status_code=303)
    clear_session_cookie(response, settings)
    return response


@router.get("/set-password")
def set_password_form(
    request: Request, settings: SettingsDep, db: SessionDep, token: str = ""
) -> Response:
    admin = admins.admin_of_setup_token(db, token=token) if 0 < len(token) <= 100 else None
    if admin is None:
        return render(request, "auth/link_unusable.html", {}, status_code=404)
    csrf, new = login_csrf_token(request)
    response = render(
        request,
        "auth/set_password.html",
        {
            "csrf_token": csrf,
            "token": token,
            "admin_email": admin.email,
            "min_length": MIN_PASSWORD_LENGTH,
        },
    )
    if new:
        set_login_csrf_cookie(response, settings, csrf)
    return response


@router.post("/set-password")
def set_password(
    request: Request,
    db: SessionDep,
    token: FormText = "",
    password: FormText = "",
    repeated: FormText = "",
    csrf_token: FormText = "",
) -> Response:
    if not tokens_match(request.cookies.get("console_login_csrf"), csrf_token):
        raise csrf_refused()
    admin = admins.admin_of_setup_token(db, token=token) if 0 < len(token) <= 100 else None
    if admin is None:
        return render(request, "auth/link_unusable.html", {}, status_code=404)
    problem = password_problem(password, repeated)
    if problem:
        return render(
            request,
            "auth/set_password.html",
            {
                "csrf_token": csrf_token,
                "token": token,
                "admin_email": admin.email,
                "min_length": MIN_PASSWORD_LENGTH,
                "error": problem,
            },
            status_code=422,
        )
    admins.set_password_hash(db, admin, password_hash=hash_password(password))
    record_action(
        db,
        actor=admin.email,
        admin_id=admin.id,
        action=AdminActionKind.PASSWORD_SET,
        target=None,
        client_ip=client_ip(request),
    )
    db.commit()
    return RedirectResponse("/console/login?set=1", status_code=303)
