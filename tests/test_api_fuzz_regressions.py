"""What the API fuzzers (tests/fuzz) found, kept as plain tests that run in every tier."""

from __future__ import annotations

import time

import jwt
import pytest

from tests.conftest import JWT_SECRET

RUNS = "/api/admin/reconciliation-runs"


@pytest.mark.parametrize("run_id", [2**63, 10**30, 0, -1])
def test_a_run_id_outside_a_bigint_is_refused_not_a_server_error(client, admin_headers, run_id):
    # Found by schemathesis: 2**63 reached PostgreSQL ("bigint out of range") and was a 500.
    response = client.get(f"{RUNS}/{run_id}", headers=admin_headers)

    assert response.status_code == 422
    assert isinstance(response.json()["detail"], str)


def test_the_largest_run_id_is_an_unknown_run(client, admin_headers):
    response = client.get(f"{RUNS}/{2**63 - 1}", headers=admin_headers)

    assert response.status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("get", "/api/admin/webhook-events", {"params": {"limit": 0}}),
        ("get", "/api/admin/disputes", {"params": {"limit": "x"}}),
        ("get", f"{RUNS}/x", {}),
        ("post", "/api/admin/disputes/du_1/evidence", {"json": {"evidence": {}}}),
        ("post", "/api/billing/credits/consume", {"json": {"amount": 0}}),
    ],
)
def test_a_validation_error_is_answered_as_the_schema_documents_it(
    client, admin_headers, user_headers, method, path, kwargs
):
    # Found by schemathesis: the schema promised FastAPI's list of errors, the app answers one
    # short reason (api.app's handler).
    headers = admin_headers if path.startswith("/api/admin/") else user_headers
    response = client.request(method, path, headers=headers, **kwargs)

    assert response.status_code == 422
    assert isinstance(response.json()["detail"], str)
    documented = client.get("/openapi.json").json()["paths"]
    operation = next(
        op
        for template, item in documented.items()
        for verb, op in item.items()
        if verb == method and _matches(template, path)
    )
    schema = operation["responses"]["422"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/ErrorOut"}


def test_no_operation_documents_the_validation_error_shape_the_app_never_sends(client):
    schema = client.get("/openapi.json").json()
    for path, item in schema["paths"].items():
        for verb, operation in item.items():
            answer = operation.get("responses", {}).get("422")
            if answer is not None:
                assert "HTTPValidationError" not in str(answer), (verb, path)


@pytest.fixture
def user_headers() -> dict[str, str]:
    token = jwt.encode(
        {"sub": "user_regression", "exp": int(time.time()) + 600}, JWT_SECRET, algorithm="HS256"
    )
    return {"Authorization": f"Bearer {token}", "Idempotency-Key": "regression-1"}


def _matches(template: str, path: str) -> bool:
    parts, wanted = template.strip("/").split("/"), path.strip("/").split("/")
    return len(parts) == len(wanted) and all(
        p == w or (p.startswith("{") and p.endswith("}"))
        for p, w in zip(parts, wanted, strict=True)
    )


@pytest.mark.parametrize(
    "path",
    [
        "/api/admin/disputes?status=%00",
        "/api/admin/webhook-events?type=a%00b",
        "/api/admin/webhook-events/evt_%00",
        "/api/admin/customers/cus_%00",
    ],
)
def test_a_nul_character_in_a_parameter_is_refused_not_a_server_error(client, admin_headers, path):
    # Found by schemathesis: `GET /api/admin/disputes?status=%00` reached PostgreSQL, which
    # refuses NUL in text ("PostgreSQL text fields cannot contain NUL"), and was a 500.
    response = client.get(path, headers=admin_headers)

    assert response.status_code == 422
    assert "NUL" in response.json()["detail"]


def test_a_nul_character_is_refused_only_after_the_admin_token(client):
    response = client.get("/api/admin/disputes?status=%00")

    assert response.status_code == 401
