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


def _signed(claims: dict, key: str | None = JWT_SECRET, algorithm: str = "HS256") -> str:
    """Claims as given, plus an expiry an hour away unless they say otherwise."""
    return jwt.encode({"exp": int(time.time()) + 3600, **claims}, key, algorithm=algorithm)


# Each bad token, and a piece of the 401's detail.
BAD_TOKENS = {
    "malformed": ("not-a-jwt", "invalid"),
    "wrongly signed": (
        _signed({"sub": "user_1"}, "another-secret-of-32-bytes-or-more!"),
        "invalid",
    ),
    "expired": (user_token("user_1", exp=int(time.time()) - 3600), "has expired"),
    "unsigned (alg none)": (_signed({"sub": "user_1"}, None, "none"), "invalid"),
    "another algorithm": (_signed({"sub": "user_1"}, algorithm="HS512"), "invalid"),
    "without sub": (_signed({"email": "jane@example.com"}), "invalid"),
    "empty sub": (_signed({"sub": " "}), "names no user"),
    "control characters in sub": (_signed({"sub": "u\x00"}), "names no user"),
    "not yet valid": (user_token("user_1", nbf=int(time.time()) + 3600), "invalid"),
    "without exp": (jwt.encode({"sub": "user_1"}, JWT_SECRET, algorithm="HS256"), "invalid"),
    "exp not a number": (user_token("user_1", exp="tomorrow"), "invalid"),
    "sub over 255 characters": (user_token("u" * 256), "over 255 characters"),
    # No AUTH_JWT_AUDIENCE here: a token minted for some audience is some other service's.
    "aud with no audience configured": (user_token("user_1", aud="another-service"), "invalid"),
}


@pytest.mark.parametrize("kind", BAD_TOKENS)
def test_a_bad_token_is_401(client, kind):
    token, expected = BAD_TOKENS[kind]
    answer = client.get("/api/billing/info", headers={"Authorization": f"Bearer {token}"})

    assert answer.status_code == 401, answer.text
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert expected in answer.json()["detail"]


def test_a_basic_auth_header_is_not_a_token(client):
    answer = client.get("/api/billing/info", headers={"Authorization": "Basic dXNlcjpwYXNz"})

    assert answer.status_code == 401


FREE_USER = {
    "plan": "free",
    "status": None,
    "current_period_end": None,
    "cancel_at_period_end": False,
    "credits_balance": 0,
}


def test_a_good_token_without_email_is_accepted(client):
    answer = client.get("/api/billing/info", headers=auth("user_no_email"))

    assert answer.status_code == 200
    assert answer.json() == FREE_USER


def test_a_sub_of_255_characters_is_accepted(client):
    token = user_token("u" * 255)

    answer = client.get("/api/billing/info", headers={"Authorization": f"Bearer {token}"})

    assert answer.status_code == 200, answer.text


ISSUER, AUDIENCE = "https://app.example.com", "billing-platform"


@pytest.fixture
def strict_client():
    """The app with AUTH_JWT_ISSUER and AUTH_JWT_AUDIENCE set."""
    with make_client(auth_jwt_issuer=ISSUER, auth_jwt_audience=AUDIENCE) as strict:
        yield strict


def test_with_issuer_and_audience_set_a_token_naming_both_is_accepted(strict_client):
    token = user_token("user_iss_aud", iss=ISSUER, aud=AUDIENCE)

    answer = strict_client.get("/api/billing/info", headers={"Authorization": f"Bearer {token}"})

    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": AUDIENCE},
        {"iss": "https://evil.example.com", "aud": AUDIENCE},
        {"iss": ISSUER},
        {"iss": ISSUER, "aud": "another-service"},
        {"iss": ISSUER, "aud": ["another-service"]},
    ],
    ids=["no iss", "another iss", "no aud", "another aud", "another aud in a list"],
)
def test_with_issuer_and_audience_set_a_token_missing_or_misnaming_one_is_401(
    strict_client, claims
):
    token = user_token("user_iss_aud", **claims)

    answer = strict_client.get("/api/billing/info", headers={"Authorization": f"Bearer {token}"})

    assert answer.status_code == 401
    assert answer.json() == {"detail": "The bearer token is invalid."}


@pytest.mark.parametrize(
    ("claims", "status"),
    [({"iss": ISSUER}, 200), ({}, 401), ({"iss": "https://evil.example.com"}, 401)],
    ids=["our iss", "no iss", "another iss"],
)
def test_with_only_an_issuer_set_the_issuer_is_checked(claims, status):
    token = user_token("user_iss", **claims)

    with make_client(auth_jwt_issuer=ISSUER) as issuer_only:
        answer = issuer_only.get("/api/billing/info", headers={"Authorization": f"Bearer {token}"})

    assert answer.status_code == status, answer.text


def test_without_a_jwt_secret_the_user_api_is_off():
    with make_client(auth_jwt_secret="") as client:
        answer = client.get("/api/billing/info", headers=auth("user_1"))

    assert answer.status_code == 503
    assert "AUTH_JWT_SECRET" in answer.json()["detail"]
