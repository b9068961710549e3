"""The archive through the real stack: an `invoice.paid` webhook posted to the API, processed
by the Celery worker, whose commit publishes `billing.archive_invoice_pdf`; a 503 from the PDF
host retried by Celery with backoff; the kept PDF served to its user and to admins only."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from db.invoice_archives import find_archive
from db.models import InvoiceArchive
from db.session import new_session
from tests.billing_api.conftest import auth
from tests.conftest import ARCHIVE_DIR, WEBHOOK_SECRET
from tests.support.events import encode, signed, wait_for_status
from tests.support.pdf_server import Answer, PdfServer, pdf_bytes
from tests.support.stripe_events import Ids, known_customer, stripe_event


@pytest.fixture
def pdf_server() -> Iterator[PdfServer]:
    with PdfServer().running() as server:
        yield server


def wait_for_archive(invoice_id: str, timeout: float = 30.0) -> InvoiceArchive:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with new_session() as session:
            row = find_archive(session, invoice_id=invoice_id)
        if row is not None:
            return row
        time.sleep(0.1)
    raise AssertionError(f"invoice {invoice_id} was never archived")


def test_a_paid_invoice_is_archived_by_the_worker_after_a_5xx_and_served_to_its_user_only(
    client, worker, pdf_server, admin_headers
):
    content = pdf_bytes("the worker's download", size=3000)
    link = pdf_server.serve("/flaky.pdf", Answer(503, b"busy"), Answer(200, content))
    ids = known_customer(Ids())
    event = stripe_event("invoice.paid", ids)
    event["data"]["object"]["invoice_pdf"] = link
    body = encode(event)

    path = f"/api/billing/invoices/{ids.invoice}/pdf"
    assert client.post("/api/stripe/webhook", content=body, headers=signed(body, WEBHOOK_SECRET))
    assert wait_for_status(event["id"]).status == "processed"
    row = wait_for_archive(ids.invoice)

    assert (row.source, row.size_bytes) == ("stripe", 3000)
    assert pdf_server.hits["/flaky.pdf"] == 2  # the 503, then the retry's 200
    assert (ARCHIVE_DIR / row.store_key).read_bytes() == content

    mine = client.get(path, headers=auth(ids.user_id))
    assert mine.status_code == 200
    assert mine.headers["content-type"] == "application/pdf"
    assert mine.content == content

    someone_else = client.get(path, headers=auth(Ids().user_id))
    assert someone_else.status_code == 404
    assert client.get(path).status_code == 401

    admin = client.get(f"/api/admin/invoices/{ids.invoice}/pdf", headers=admin_headers)
    assert (admin.status_code, admin.content) == (200, content)
    assert client.get(f"/api/admin/invoices/{ids.invoice}/pdf").status_code == 401


def test_an_unknown_or_unarchived_invoice_is_404(client, admin_headers):
    unknown = client.get("/api/admin/invoices/in_unknown/pdf", headers=admin_headers)
    assert unknown.status_code == 404
    assert "in_unknown" in unknown.json()["detail"]
    user = client.get("/api/billing/invoices/in_unknown/pdf", headers=auth(Ids().user_id))
    assert user.status_code == 404
