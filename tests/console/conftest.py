"""Fixtures of the console tests: an admin with a password, and a signed-in test client."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from tests.conftest import make_client
from tests.support.stripe_events import Ids, dispute_event, known_customer, process_ok, stripe_event
from tests.support.stripe_fake import StripeFake

PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class AdminLogin:
    email: str
    password: str


def create_admin(password: str = PASSWORD) -> AdminLogin:
    """A fresh admin whose password is set, as the set-password link would."""
    from api.console.security import hash_password
    from db.admins import issue_setup_token, set_password_hash
    from db.session import transaction

    email = f"ops-{uuid.uuid4().hex[:10]}@example.com"
    with transaction() as session:
        admin, _ = issue_setup_token(session, email=email)
        set_password_hash(session, admin, password_hash=hash_password(password))
    return AdminLogin(email=email, password=password)


def form_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def sign_in(client: TestClient, login: AdminLogin) -> None:
    page = client.get("/console/login")
    answer = client.post(
        "/console/login",
        data={
            "email": login.email,
            "password": login.password,
            "csrf_token": form_token(page.text),
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text


@contextmanager
def https_client(**overrides: object) -> Iterator[TestClient]:
    """An in-process app over https: outside development the console's cookies are Secure."""
    with make_client(**overrides) as client:
        client.base_url = client.base_url.copy_with(scheme="https")
        yield client


@pytest.fixture
def admin_login() -> AdminLogin:
    return create_admin()


@pytest.fixture
def console(admin_login: AdminLogin) -> Iterator[TestClient]:
    """A client signed in as a fresh admin (https, so the Secure cookie is sent back)."""
    with https_client() as client:
        sign_in(client, admin_login)
        yield client


def open_dispute(fake: StripeFake) -> Ids:
    """A paid invoice, then a chargeback of it due in three days, known to the fake too."""
    ids = known_customer(Ids())
    process_ok(stripe_event("invoice.paid", ids, api_version="2022-11-15"))
    due_in_three_days = int(time.time()) + 3 * 86_400 + 3_600
    event = dispute_event("charge.dispute.created", ids, due_by=due_in_three_days)
    process_ok(event)
    fake.disputes[ids.dispute] = event["data"]["object"]
    return ids
