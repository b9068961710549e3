"""The operators' console: server-rendered pages under `/console/`, in the API process.

Jinja templates (`templates/`), htmx for the parts that refresh on their own (`static/`,
vendored with its licence), SVG charts drawn on the server; every page reads without
JavaScript. People sign in (`security`); each action goes through `api.operations`, the
same code as the JSON admin API, and lands in the `admin_actions` audit trail.

    auth_pages      sign in and out, set a password from a one-time link
    overview        rates, lag, failed and stale events, disputes, the last run
    events          filter, detail (payload, timings, effects), replay
    disputes        by deadline, detail, evidence form, submit, accept
    customers       search; subscription, invoices, ledger, emails, disputes
    reconciliation  runs, drift items, start a run or a dry run
    audit_trail     the admin_actions table
"""

from __future__ import annotations

from http import HTTPStatus

from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.console import (
    audit_trail,
    auth_pages,
    customers,
    disputes,
    events,
    overview,
    reconciliation,
)
from api.console.disputes import ShownRefusal
from api.console.rendering import STATIC, render
from api.console.security import LoginRequired

PREFIX = "/console"


def install(app: FastAPI) -> None:
    """Mount the console's pages and static files, and its handlers of refusals."""
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="console_static")
    for module in (auth_pages, overview, events, disputes, customers, reconciliation, audit_trail):
        app.include_router(module.router)
    app.add_exception_handler(LoginRequired, _to_login)
    app.add_exception_handler(ShownRefusal, _shown_refusal)
    app.add_exception_handler(StarletteHTTPException, _console_error_page)


async def _to_login(request: Request, exc: Exception) -> Response:
    """A stranger goes to the login page, and comes back where they were after it."""
    if request.headers.get("HX-Request"):
        # A fragment htmx polls for: a redirect would be followed inside the XHR and the
        # login page swapped into the fragment; htmx sends the whole page there instead.
        return Response(status_code=401, headers={"HX-Redirect": f"{PREFIX}/login"})
    target = request.url.path
    if request.url.query:
        target += f"?{request.url.query}"
    if request.method != "GET":
        target = f"{PREFIX}/"
    return RedirectResponse(f"{PREFIX}/login?next={_quote(target)}", status_code=303)


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")


async def _shown_refusal(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ShownRefusal)
    return exc.response


async def _console_error_page(request: Request, exc: Exception) -> Response:
    """The console's refusals as a page; every other path keeps FastAPI's JSON answer."""
    assert isinstance(exc, StarletteHTTPException)
    if not request.url.path.startswith(f"{PREFIX}/") or request.url.path.startswith(
        f"{PREFIX}/static/"
    ):
        return await http_exception_handler(request, exc)
    if isinstance(exc, HTTPException) and exc.status_code == 405:
        return await http_exception_handler(request, exc)
    title = (
        HTTPStatus(exc.status_code).phrase
        if exc.status_code in HTTPStatus._value2member_map_
        else "Error"
    )
    return render(
        request,
        "error.html",
        {"status_code": exc.status_code, "title": title, "detail": exc.detail},
        status_code=exc.status_code,
    )
