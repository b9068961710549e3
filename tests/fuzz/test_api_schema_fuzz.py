"""Fuzzing the user and admin APIs from their own OpenAPI schema, with schemathesis.

Every operation under `/api/billing/` and `/api/admin/` gets generated requests, valid
(positive) and invalid (negative), under a token drawn for each: the right one (the admin
token, or a user JWT minted with the host application's secret), the wrong kind, an expired
one, one without `exp`, one signed with another secret or not at all, garbage, or none. One
request in eight carries a body over the 64 KiB cap instead of its own; one in four has a NUL
character in (or ten thousand characters as) every text path and query parameter. Path
parameters sometimes name rows that exist (a customer with a subscription, ledger and
dispute; a stored event; a reconciliation run), so the generated requests reach past 404.

It runs twice: with Stripe off, as the tests run (routes that need Stripe answer 503 "Stripe
is not configured"), and the changes (POST) again against the Stripe fake over HTTP, so that
they reach Stripe and store its answers.

A finding is: an exception out of the app, any 5xx but that deliberate 503, a 2xx without
valid credentials, anything but 413 to an oversized body, or a failed schemathesis check
(server error, response schema and content type conformance). Findings are collected per
operation and kind, one example each with a curl line, and reported together.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt
import pytest
import schemathesis
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup, ServerError
from schemathesis.python import asgi as schemathesis_asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from core.plans import get_catalogue
from core.settings import load_settings
from db.models import RunStatus
from db.reconciliation import finish_run, start_run
from db.session import new_session
from tests.conftest import ADMIN_TOKEN, JWT_SECRET, RUN_ID
from tests.fuzz.conftest import (
    Findings,
    FuzzTally,
    budget,
    last_frames,
    record_summary,
    timeout_seconds,
)
from tests.support.events import store_directly
from tests.support.stripe_events import (
    Ids,
    dispute_event,
    dispute_row,
    known_customer,
    process,
    process_ok,
    stripe_event,
)
from tests.support.stripe_fake import TEST_KEY, StripeFake

pytestmark = [
    pytest.mark.fuzz,
    pytest.mark.timeout(timeout_seconds()),
    pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies"),
]

OPERATIONS = r"^/api/(billing|admin)/"
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
STRIPE_NOT_CONFIGURED = "Stripe is not configured"
# The token drawn for each request; `valid` (the right kind for the operation) most often.
TOKENS = (
    ["valid"] * 8
    + ["stranger"] * 2
    + ["wrong_kind", "expired", "no_exp", "wrong_secret", "alg_none", "garbage", "none"]
    + ["generated"]
)
CREDENTIALED = {"valid", "stranger"}
# Every route but the webhook refuses a body over 64 KiB with 413, before auth and parsing;
# one request in eight carries one.
BODY_LIMIT = 64 * 1024
OVERSIZED = st.sampled_from([False] * 7 + [True])
# What PostgreSQL or a parser may choke on, put into every text path and query parameter of
# one request in eight: a NUL character, or ten thousand characters.
TAMPERING = st.sampled_from([None] * 6 + ["nul", "long"])


def _tamper(case: Any, how: str | None) -> None:
    def spoil(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        return value + "\x00" if how == "nul" else (value or "x") * (10_000 // max(1, len(value)))

    if how is not None:
        case.path_parameters = {k: spoil(v) for k, v in (case.path_parameters or {}).items()}
        case.query = {k: spoil(v) for k, v in (case.query or {}).items()} or case.query


def user_token(user_id: str, email: str | None = None, **claims: Any) -> str:
    payload: dict[str, Any] = {"sub": user_id, "exp": int(time.time()) + 600, **claims}
    if email is not None:
        payload["email"] = email
    return jwt.encode(payload, JWT_SECRET, algorithm="HS256")


@dataclass(frozen=True)
class Seeded:
    """Rows the generated requests may name."""

    ids: Ids  # a customer with a `pro` subscription, its first period's credits, a dispute
    event_id: str
    run_id: int
    dispute_id: str | None

    def path_parameters(self) -> dict[str, Any]:
        known: dict[str, Any] = {
            "customer_id": self.ids.customer,
            "event_id": self.event_id,
            "run_id": self.run_id,
            "invoice_id": self.ids.invoice,
            "cus_id": self.ids.customer,
            "evt_id": self.event_id,
        }
        if self.dispute_id is not None:
            known["dispute_id"] = self.dispute_id
        return known


def _seed() -> Seeded:
    ids = known_customer(Ids())
    process_ok(stripe_event("customer.subscription.created", ids))
    process_ok(stripe_event("invoice.paid", ids))
    # Without Stripe the dispute may stay unlinked, or fail; the row is what matters.
    process(dispute_event("charge.dispute.created", ids))
    event = stripe_event("customer.updated", ids)
    store_directly(event, status="processed")
    with new_session() as session, session.begin():
        run, _ = start_run(session, trigger="fuzz", stale_after=timedelta(0))
        finish_run(session, run_id=run.id, status=RunStatus.SUCCEEDED, error=None)
        run_id = run.id
    return Seeded(
        ids=ids,
        event_id=event["id"],
        run_id=run_id,
        dispute_id=ids.dispute if dispute_row(ids.dispute) is not None else None,
    )


def _teach(fake: StripeFake, seeded: Seeded) -> None:
    """What the Stripe fake must know of the seeded customer for its calls to succeed."""
    ids = seeded.ids
    fake.add_customer(ids.customer, user_id=ids.user_id)
    fake.subscriptions[ids.subscription] = stripe_event("customer.subscription.created", ids)[
        "data"
    ]["object"]
    fake.charges[ids.charge] = {"id": ids.charge, "object": "charge", "customer": ids.customer}
    if seeded.dispute_id is not None:
        fake.disputes[seeded.dispute_id] = dispute_event("charge.dispute.created", ids)["data"][
            "object"
        ]


@dataclass(frozen=True)
class Target:
    stripe: str  # `off`: no key, as the tests run; `fake`: the Stripe fake over HTTP
    schema: Any  # the user and admin operations of the app's OpenAPI schema
    seeded: Seeded
    session: schemathesis_asgi.ASGIClient  # one in-process client for every call


@pytest.fixture(params=["off", "fake"], ids=["stripe_off", "stripe_fake"])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """The app (lifespan included, publishing under a broker prefix no worker reads) and its
    schema, loaded from the app itself; Stripe off, or the Stripe fake."""
    from api.app import create_app

    seeded = _seed()
    overrides: dict[str, Any] = {"broker_key_prefix": f"test-{RUN_ID}:fuzz:"}
    with ExitStack() as stack:
        if request.param == "fake":
            fake = stack.enter_context(StripeFake().running())
            _teach(fake, seeded)
            overrides.update(stripe_api_base=fake.url, stripe_secret_key_test=TEST_KEY)
        app = create_app(load_settings(**overrides))
        # With the fake, only the changes: they are what calls Stripe.
        methods = ["POST"] if request.param == "fake" else None
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        schema = schema.include(path_regex=OPERATIONS, method=methods)
        stack.callback(schemathesis_asgi.shutdown_lifespans)
        session = stack.enter_context(schemathesis_asgi.get_client(app))
        yield Target(stripe=request.param, schema=schema, seeded=seeded, session=session)


def _body_properties(raw_schema: dict[str, Any], operation: Any) -> set[str]:
    """The property names of the operation's JSON request body (through `$ref`, `anyOf`)."""
    content = operation.definition.raw.get("requestBody", {}).get("content", {})
    pending = [content.get("application/json", {}).get("schema", {})]
    names: set[str] = set()
    while pending:
        node = pending.pop()
        ref = node.get("$ref", "")
        if ref.startswith("#/components/schemas/"):
            pending.append(raw_schema["components"]["schemas"][ref.rsplit("/", 1)[1]])
        pending.extend(node.get("anyOf", []) + node.get("allOf", []))
        names |= set(node.get("properties", {}))
    return names


def _meaningful_bodies(raw_schema: dict[str, Any], operation: Any) -> list[dict[str, Any]]:
    """Bodies that name what exists (the catalogue's plans and packs, credits the seeded
    user has, evidence fields), which random text almost never does: they reach Stripe."""
    names = _body_properties(raw_schema, operation)
    catalogue = get_catalogue()
    bodies: list[dict[str, Any]] = []
    if "plan" in names:
        bodies += [{"plan": plan} for plan in catalogue.plans]
    if "pack" in names:
        bodies += [{"pack": pack} for pack in catalogue.packs]
    if "amount" in names:
        bodies += [{"amount": 1, "reason": "fuzz"}, {"amount": 10**9}]
    if "at_period_end" in names:
        bodies += [{"at_period_end": True}, {"at_period_end": False}]
    if "evidence" in names:
        bodies += [
            {"evidence": {"product_description": "fuzz"}, "submit": s} for s in (False, True)
        ]
    return bodies


def _authorization(kind: str, operation_path: str, seeded: Seeded, garbage: str) -> str | None:
    """The Authorization header of that kind for this operation; None: send none."""
    admin = operation_path.startswith("/api/admin/")
    user = user_token(seeded.ids.user_id, seeded.ids.email)
    tokens = {
        "valid": ADMIN_TOKEN if admin else user,
        "stranger": ADMIN_TOKEN if admin else user_token(f"user_fz_{uuid.uuid4().hex[:8]}"),
        "wrong_kind": user if admin else ADMIN_TOKEN,
        "expired": user_token(seeded.ids.user_id, exp=int(time.time()) - 3600),
        "no_exp": jwt.encode({"sub": seeded.ids.user_id}, JWT_SECRET, algorithm="HS256"),
        "wrong_secret": jwt.encode(
            {"sub": seeded.ids.user_id, "exp": int(time.time()) + 600},
            "another-secret-of-32-bytes-or-more-0123456789",
            algorithm="HS256",
        ),
        "alg_none": jwt.encode(
            {"sub": seeded.ids.user_id, "exp": int(time.time()) + 600}, None, algorithm="none"
        ),
        "garbage": garbage,
    }
    if kind == "none":
        return None
    return f"Bearer {tokens[kind]}"


def _deliberate(failure: Failure, response: Any) -> bool:
    """A 503 that says Stripe is not configured: the answer the platform means to give."""
    if not (isinstance(failure, ServerError) and response.status_code == 503):
        return False
    try:
        detail = response.json().get("detail", "")
    except (ValueError, AttributeError):
        return False
    return isinstance(detail, str) and detail.startswith(STRIPE_NOT_CONFIGURED)


def test_user_and_admin_apis_answer_within_their_schema(target: Target) -> None:
    schema, seeded = target.schema, target.seeded
    tally = FuzzTally(f"api_schema[stripe_{target.stripe}]")
    findings = Findings()
    per_operation: dict[str, Counter[str]] = {}  # statuses each operation answered
    unsatisfiable: list[str] = []
    tampered: Counter[str] = Counter()
    known = seeded.path_parameters()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, "no operation matched " + OPERATIONS

    def run(case: Any, token_kind: str, garbage: str, oversized: bool, tamper: str | None) -> None:
        label = case.operation.label
        _tamper(case, tamper)
        if tamper is not None:
            tampered[tamper] += 1
        kind = "oversized" if oversized else token_kind
        if oversized:
            case.body = {"pad": "x" * BODY_LIMIT}
            case.media_type = "application/json"
        if token_kind != "generated":  # else: whatever schemathesis generated, if anything
            authorization = _authorization(token_kind, case.operation.path, seeded, garbage)
            case.headers = {
                k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"
            }
            if authorization is not None:
                case.headers["Authorization"] = authorization
        try:
            response = case.call(session=target.session)
        except Exception as exc:
            tally.count(kind, "exception")
            per_operation.setdefault(label, Counter())["exception"] += 1
            findings.add(label, f"exception {type(exc).__name__}", last_frames())
            return
        status = response.status_code
        tally.count(kind, status)
        per_operation.setdefault(label, Counter())[str(status)] += 1
        if oversized:
            if status != 413:
                findings.add(label, f"{status} to a body over {BODY_LIMIT} bytes", label)
            return
        curl = case.as_curl_command()
        protected = bool(case.operation.definition.raw.get("security"))
        if protected and 200 <= status < 300 and token_kind not in CREDENTIALED | {"generated"}:
            findings.add(label, f"{status} with a {token_kind} token", curl)
        try:
            case.validate_response(response, checks=CHECKS)
        except (FailureGroup, Failure) as exc:
            failures = exc.exceptions if isinstance(exc, FailureGroup) else (exc,)
            for failure in failures:
                if not _deliberate(failure, response):
                    findings.add(
                        label,
                        f"{failure.title} ({status})",
                        f"{curl}\n{failure.message}\nanswer: {response.text[:500]}",
                    )

    tokens = st.sampled_from(TOKENS)
    garbage = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=60)
    for operation in operations:
        names = set(re.findall(r"{(\w+)}", operation.path))
        fixed = {name: known[name] for name in names if name in known}
        bodies = _meaningful_bodies(schema.raw_schema, operation)
        for mode in MODES:
            cases = operation.as_strategy(generation_mode=mode)
            if mode is GenerationMode.POSITIVE and (fixed or bodies):
                cases = st.one_of(
                    cases,
                    *(
                        operation.as_strategy(
                            generation_mode=mode, path_parameters=fixed, body=body
                        )
                        for body in bodies
                    ),
                    *(
                        [operation.as_strategy(generation_mode=mode, path_parameters=fixed)]
                        * bool(fixed)
                    ),
                )
            test = given(cases, tokens, garbage, OVERSIZED, TAMPERING)(run)
            try:
                settings(max_examples=budget("api_per_operation"))(test)()
            except Unsatisfiable:  # nothing to make invalid: no parameters, no body
                unsatisfiable.append(f"{operation.label} ({mode.value})")

    tally.extra.update(
        operations=len(operations),
        per_operation={op: dict(sorted(n.items())) for op, n in sorted(per_operation.items())},
        no_negative_cases=unsatisfiable,
        tampered_parameters=dict(tampered),
        findings=findings.summary(),
    )
    record_summary(tally)
    assert not findings, "Answers outside the schema or the contract:\n" + findings.report()
