"""Signing in to the console: set-password links, sessions, CSRF, the login rate limit, and
the audit trail of what the admin API's token does."""

from __future__ import annotations

import re
import subprocess
import sys

from sqlalchemy import select

from db.models import AdminAction
from db.session import new_session
from tests.conftest import make_client
from tests.console.conftest import PASSWORD, create_admin, form_token, https_client, sign_in
from tests.support.events import make_event, store_directly


def audit_rows(target: str | None = None, actor: str | None = None) -> list[AdminAction]:
    with new_session() as session:
        query = select(AdminAction).order_by(AdminAction.id)
        if target is not None:
            query = query.where(AdminAction.target == target)
        if actor is not None:
            query = query.where(AdminAction.actor == actor)
        return list(session.scalars(query))


def test_a_stranger_is_sent_to_the_login_page(client):
    for path in ("/console/", "/console/events?status=failed", "/console/audit"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/console/login?next=/console/")
    # A fragment htmx polls for sends the whole page to the login page instead.
    polled = client.get("/console/overview/panels", headers={"HX-Request": "true"})
    assert (polled.status_code, polled.headers["HX-Redirect"]) == (401, "/console/login")


def test_admin_create_prints_a_one_time_link_that_sets_the_password():
    email = f"new-{make_event()['id'][-8:].lower()}@example.com"
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "admin", "create", email, "--url", "https://ops.test"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert email not in result.stdout  # the address is shown redacted
    link = re.search(r"https://ops\.test(/console/set-password\?token=\S+)", result.stdout)
    assert link, result.stdout

    with https_client() as client:
        form = client.get(link.group(1))
        assert form.status_code == 200 and email in form.text
        token = re.search(r'name="token" value="([^"]+)"', form.text).group(1)
        fields = {"token": token, "csrf_token": form_token(form.text)}
        short = client.post(
            "/console/set-password", data={**fields, "password": "short", "repeated": "short"}
        )
        assert short.status_code == 422
        done = client.post(
            "/console/set-password",
            data={**fields, "password": PASSWORD, "repeated": PASSWORD},
            follow_redirects=False,
        )
        assert done.status_code == 303
        # The link works once.
        assert client.get(link.group(1)).status_code == 404
        again = client.post(
            "/console/set-password", data={**fields, "password": PASSWORD, "repeated": PASSWORD}
        )
        assert again.status_code == 404
        sign_in(client, type("L", (), {"email": email.upper(), "password": PASSWORD})())
        assert client.get("/console/").status_code == 200
    actions = [row.action for row in audit_rows() if row.actor == email]
    assert actions[-2:] == ["password_set", "login"]


def test_the_session_cookie_is_httponly_lax_and_secure_outside_development(admin_login):
    with https_client() as client:
        page = client.get("/console/login")
        answer = client.post(
            "/console/login",
            data={
                "email": admin_login.email,
                "password": admin_login.password,
                "csrf_token": form_token(page.text),
            },
            follow_redirects=False,
        )
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("console_session=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" in cookie
    assert "Path=/console" in cookie
    with make_client(app_env="development") as client:
        page = client.get("/console/login")
        answer = client.post(
            "/console/login",
            data={
                "email": admin_login.email,
                "password": admin_login.password,
                "csrf_token": form_token(page.text),
            },
            follow_redirects=False,
        )
    assert "Secure" not in answer.headers["set-cookie"]


def test_a_wrong_password_is_refused_and_audited(admin_login):
    with https_client() as client:
        page = client.get("/console/login")
        answer = client.post(
            "/console/login",
            data={
                "email": admin_login.email,
                "password": "wrong",
                "csrf_token": form_token(page.text),
            },
        )
    assert answer.status_code == 401
    assert "do not match" in answer.text
    assert [r.action for r in audit_rows(actor=admin_login.email)] == ["login_failed"]


def test_login_attempts_are_rate_limited_per_account(admin_login):
    from api.console.security import MAX_ATTEMPTS_PER_ACCOUNT

    with https_client() as client:
        token = form_token(client.get("/console/login").text)
        codes = [
            client.post(
                "/console/login",
                data={"email": admin_login.email, "password": "guess", "csrf_token": token},
            ).status_code
            for _ in range(MAX_ATTEMPTS_PER_ACCOUNT + 1)
        ]
        # Even the right password waits now.
        right = client.post(
            "/console/login",
            data={
                "email": admin_login.email,
                "password": admin_login.password,
                "csrf_token": token,
            },
        )
    assert codes[:-1] == [401] * MAX_ATTEMPTS_PER_ACCOUNT
    assert codes[-1] == 429
    assert right.status_code == 429


def test_a_post_without_the_csrf_token_is_refused(console):
    event = make_event("invoice.paid")
    store_directly(event, status="failed", attempts=1, last_error="ValueError: bad")

    missing = console.post(f"/console/events/{event['id']}/replay", data={})
    wrong = console.post(f"/console/events/{event['id']}/replay", data={"csrf_token": "forged"})
    login_without = console.post("/console/login", data={"email": "a@b.c", "password": "x"})

    assert missing.status_code == wrong.status_code == login_without.status_code == 403
    assert "CSRF" in missing.text
    assert audit_rows(target=event["id"]) == []


def test_signing_out_ends_the_session(console):
    token = form_token(console.get("/console/").text)
    cookie = console.cookies.get("console_session")
    console.post("/console/logout", data={"csrf_token": token})
    with https_client() as stranger:
        stranger.cookies.set("console_session", cookie, path="/console")
        assert stranger.get("/console/", follow_redirects=False).status_code == 303


def test_the_admin_api_token_is_audited_as_api_token(client, admin_headers, worker):
    event = make_event("invoice.paid")
    store_directly(event, status="failed", attempts=1, last_error="ValueError: bad")

    answer = client.post(f"/api/admin/webhook-events/{event['id']}/replay", headers=admin_headers)

    assert answer.status_code == 202
    (row,) = audit_rows(target=event["id"])
    assert (row.actor, row.action, row.admin_id) == ("api-token", "replay", None)
    assert row.detail == {"status": "queued"}


def test_pages_render_for_a_signed_in_admin(console):
    event = make_event("invoice.paid")
    store_directly(event, status="failed", attempts=1, last_error="ValueError: bad")
    for path in (
        "/console/",
        "/console/overview/panels",
        "/console/events?status=failed",
        f"/console/events/{event['id']}",
        f"/console/events/{event['id']}/replay",
        "/console/disputes?show=all",
        "/console/customers?q=example.com",
        "/console/reconciliation",
        "/console/audit",
    ):
        answer = console.get(path)
        assert answer.status_code == 200, (path, answer.text[:500])
        assert answer.headers["content-security-policy"].startswith("default-src 'self'")
    assert console.get("/console/events/evt_nobody").status_code == 404
    assert console.get("/console/customers/cus_nobody").status_code == 404
    assert console.get("/console/events?since=yesterday").status_code == 422


def test_a_second_admin_sees_the_first_ones_actions(console, admin_login):
    other = create_admin()
    with https_client() as client:
        sign_in(client, other)
        trail = client.get("/console/audit?action=login").text
    assert admin_login.email in trail and other.email in trail
