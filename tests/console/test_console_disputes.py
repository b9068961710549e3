"""Answering a dispute from the console (staging evidence, conceding after a confirmation)
and through the JSON admin API: the same actions, each in the audit trail with its actor."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.console.conftest import form_token, https_client, open_dispute, sign_in
from tests.console.test_console_access import audit_rows
from tests.support.stripe_events import dispute_event, dispute_row, process_ok, using_stripe
from tests.support.stripe_fake import TEST_KEY, StripeFake


@pytest.fixture
def fake() -> Iterator[StripeFake]:
    with StripeFake().running() as running, using_stripe(running.client()):
        yield running


@pytest.fixture
def console_on_fake(fake, admin_login):
    with https_client(stripe_api_base=fake.url, stripe_secret_key_test=TEST_KEY) as client:
        sign_in(client, admin_login)
        yield client


def test_staging_evidence_and_conceding(fake, console_on_fake, admin_login):
    ids = open_dispute(fake)
    page = console_on_fake.get(f"/console/disputes/{ids.dispute}")
    assert "3d 0h left" in page.text
    assert ids.email in page.text  # prefilled as the customer's email address
    token = form_token(page.text)

    staged = console_on_fake.post(
        f"/console/disputes/{ids.dispute}/evidence",
        data={"csrf_token": token, "intent": "stage", "evidence_service_date": "2026-01-01"},
    )
    assert "Evidence saved at Stripe" in staged.text
    assert fake.disputes[ids.dispute]["evidence"]["service_date"] == "2026-01-01"

    confirm = console_on_fake.get(f"/console/disputes/{ids.dispute}/accept")
    assert "cannot be undone" in confirm.text
    accepted = console_on_fake.post(
        f"/console/disputes/{ids.dispute}/accept", data={"csrf_token": token, "confirm": "yes"}
    )
    assert "Dispute accepted" in accepted.text
    assert dispute_row(ids.dispute).status == "lost"

    rows = audit_rows(target=ids.dispute)
    assert [(r.actor, r.action) for r in rows] == [
        (admin_login.email, "evidence_staged"),
        (admin_login.email, "dispute_accepted"),
    ]
    assert rows[0].detail["fields"] == ["service_date"]


def test_submitting_asks_for_a_confirmation_first(fake, console_on_fake):
    ids = open_dispute(fake)
    token = form_token(console_on_fake.get(f"/console/disputes/{ids.dispute}").text)
    fields = {"csrf_token": token, "intent": "submit", "evidence_uncategorized_text": "Used."}

    asked = console_on_fake.post(f"/console/disputes/{ids.dispute}/evidence", data=fields)

    assert "Submit the evidence" in asked.text
    assert dispute_row(ids.dispute).status == "needs_response"
    assert audit_rows(target=ids.dispute) == []


def test_a_closed_dispute_is_refused_on_its_page(fake, console_on_fake):
    ids = open_dispute(fake)
    token = form_token(console_on_fake.get(f"/console/disputes/{ids.dispute}").text)
    process_ok(dispute_event("charge.dispute.closed", ids, status="won"))

    answer = console_on_fake.post(
        f"/console/disputes/{ids.dispute}/accept", data={"csrf_token": token, "confirm": "yes"}
    )

    assert answer.status_code == 409
    assert "already closed" in answer.text


def test_the_admin_api_answers_are_audited_as_api_token(fake, admin_headers):
    ids = open_dispute(fake)
    with https_client(stripe_api_base=fake.url, stripe_secret_key_test=TEST_KEY) as client:
        evidence = client.post(
            f"/api/admin/disputes/{ids.dispute}/evidence",
            json={"evidence": {"product_description": "Credits"}, "submit": True},
            headers=admin_headers,
        )
        accept = client.post(f"/api/admin/disputes/{ids.dispute}/accept", headers=admin_headers)

    assert evidence.status_code == 200
    assert accept.status_code == 200
    assert [(r.actor, r.action) for r in audit_rows(target=ids.dispute)] == [
        ("api-token", "evidence_submitted"),
        ("api-token", "dispute_accepted"),
    ]
