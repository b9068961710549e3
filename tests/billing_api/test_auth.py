"""Who may call the user billing API: a bearer JWT signed with AUTH_JWT_SECRET (HS256)."""

from __future__ import annotations

import time

import jwt
import pytest

from tests.billing_api.conftest import auth, user_token
from tests.conftest import JWT_SECRET, make_client

USER_ROUTES = [
    ("GET", "/api/billing/info", None),
    ("GET", "/api/billing/credits", None),
    ("GET", "/api/billing/invoices", None),
    ("POST", "/api/billing/checkout", {"plan": "pro"}),
    ("POST", "/api/billing/subscription/change", {"plan": "team"}),
    ("POST", "/api/billing/subscription/cancel", {"at_period_end": True}),
    ("POST", "/api/billing/portal", None),
    ("POST", "/api/billing/credits/consume", {"amount": 1}),
]


def _call(client, method, path, body, headers):
    return client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize(("method", "path", "body"), USER_ROUTES)
def test_every_user_route_needs_a_token(client, method, path, body):
    answer = _call(client, method, path, body, {})

    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert answer.json() == {"detail": "A bearer token is required."}


BAD_TOKENS = {
    "malformed": "not-a-jwt",
    "wrongly signed": jwt.encode({"sub": "user_1"}, "another-secret-of-32-bytes-or-more!", "HS256"),
    "expired": user_token("user_1", exp=int(time.time()) - 3600),
    "unsigned (alg none)": jwt.encode({"sub": "user_1"}, None, algorithm="none"),
    "another algorithm": jwt.encode({"sub": "user_1"}, JWT_SECRET, algorithm="HS512"),
    "without sub": jwt.encode({"email": "jane@example.com"}, JWT_SECRET, algorithm="HS256"),
    "empty sub": jwt.encode({"sub": " "}, JWT_SECRET, algorithm="HS256"),
    "control characters in sub": jwt.encode({"sub": "u\x00"}, JWT_SECRET, algorithm="HS256"),
    "not yet valid": user_token("user_1", nbf=int(time.time()) + 3600),
}


@pytest.mark.parametrize("kind", BAD_TOKENS)
def test_a_bad_token_is_401(client, kind):
    answer = client.get(
        "/api/billing/info", headers={"Authorization": f"Bearer {BAD_TOKENS[kind]}"}
    )

    assert answer.status_code == 401, answer.text
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    expected = "has expired" if kind == "expired" else "invalid" if "sub" not in kind else ""
    assert expected in answer.json()["detail"]


def test_a_basic_auth_header_is_not_a_token(client):
    answer = client.get("/api/billing/info", headers={"Authorization": "Basic dXNlcjpwYXNz"})

    assert answer.status_code == 401


def test_a_good_token_without_email_or_expiry_is_accepted(client):
    token = jwt.encode({"sub": "user_no_exp"}, JWT_SECRET, algorithm="HS256")

    answer = client.get("/api/billing/info", headers={"Authorization": f"Bearer {token}"})

    assert answer.status_code == 200
    assert answer.json() == {
        "plan": "free",
        "status": None,
        "current_period_end": None,
        "cancel_at_period_end": False,
        "credits_balance": 0,
    }


def test_without_a_jwt_secret_the_user_api_is_off():
    with make_client(auth_jwt_secret="") as client:
        answer = client.get("/api/billing/info", headers=auth("user_1"))

    assert answer.status_code == 503
    assert "AUTH_JWT_SECRET" in answer.json()["detail"]
