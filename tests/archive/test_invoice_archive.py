"""The invoice archive on both stores (a directory, and S3 through moto's server): Stripe's PDF
downloaded from a real local HTTP server and kept with its sha256, and the platform's own PDF
where Stripe's cannot be had (no link, a host not allowed, over the size cap)."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from billing.invoice_archive import archive_invoice, archive_invoices, archive_key
from core.object_store import ObjectStore, open_store
from core.pdf_download import DownloadUnavailable
from core.settings import load_settings
from db.invoice_archives import find_archive
from db.models import InvoiceArchive
from db.session import new_session, transaction
from tasks.invoice_archive import archive_invoice_pdf
from tasks.reconciliation.archives import queue_missing_archives
from tests.support.pdf_server import Answer, PdfServer, pdf_bytes
from tests.support.stripe_events import (
    Ids,
    billing_context,
    known_customer,
    process_ok,
    stripe_event,
)


@pytest.fixture
def pdf_server() -> Iterator[PdfServer]:
    with PdfServer().running() as server:
        yield server


@pytest.fixture(params=["file", "s3"])
def store(request, tmp_path) -> ObjectStore:
    if request.param == "file":
        return open_store(f"file://{tmp_path}/invoices")
    server = request.getfixturevalue("s3_server")
    return open_store(f"s3://{server.new_bucket()}/archive", endpoint_url=server.endpoint_url)


def stored_invoice(pdf_url: str | None, *, status: str = "paid", amount: int = 2900) -> Ids:
    """A customer's invoice stored by its `invoice.paid` event, its PDF link `pdf_url`."""
    ids = known_customer(Ids())
    event = stripe_event("invoice.paid", ids)
    invoice = event["data"]["object"]
    invoice.update(invoice_pdf=pdf_url, status=status, amount_due=amount, amount_paid=amount)
    process_ok(event)
    return ids


def archive(ids: Ids, store: ObjectStore, **settings: object) -> str:
    ctx = billing_context()
    if settings:
        ctx = dataclasses.replace(ctx, settings=load_settings(**settings))
    return archive_invoice(ctx=ctx, store=store, invoice_id=ids.invoice, transaction=transaction)


def kept(ids: Ids) -> InvoiceArchive:
    with new_session() as session:
        row = find_archive(session, invoice_id=ids.invoice)
    assert row is not None
    return row


def test_stripe_pdf_is_kept_with_its_sha256_following_an_allowed_redirect(store, pdf_server):
    content = pdf_bytes("stripe's own", size=5000)
    pdf_server.serve("/files/invoice.pdf", Answer(200, content))
    # Stripe's `invoice_pdf` link answers with a redirect to its file host.
    link = pdf_server.serve("/invoice/pdf", Answer(302, headers={"Location": "/files/invoice.pdf"}))
    ids = stored_invoice(link)

    assert archive(ids, store) == "stripe"

    row = kept(ids)
    assert (row.source, row.size_bytes, row.invoice_status) == ("stripe", 5000, "paid")
    assert row.sha256 == hashlib.sha256(content).hexdigest()
    assert row.store_key == archive_key(ids.invoice, "paid")
    assert store.get(row.store_key) == content
    # Once kept, a second task (a duplicate, the nightly fill) downloads nothing.
    assert archive(ids, store) == "unchanged"
    assert pdf_server.hits["/files/invoice.pdf"] == 1


@pytest.mark.parametrize("how", ["link", "redirect"])
def test_a_download_refused_by_host_gets_the_platforms_own_pdf(store, pdf_server, how):
    pdf_server.serve("/elsewhere.pdf", Answer(200, pdf_bytes("never fetched")))
    elsewhere = pdf_server.url("/elsewhere.pdf", host="localhost")  # same server, not allowed
    if how == "link":
        link = elsewhere
    else:
        link = pdf_server.serve("/invoice/pdf", Answer(302, headers={"Location": elsewhere}))
    ids = stored_invoice(link)

    assert archive(ids, store) == "generated"

    row = kept(ids)
    assert row.source == "generated"
    content = store.get(row.store_key)
    assert content.startswith(b"%PDF-")
    assert row.sha256 == hashlib.sha256(content).hexdigest()
    assert pdf_server.hits["/elsewhere.pdf"] == 0


@pytest.mark.parametrize("undeclared_length", [False, True], ids=["declared", "undeclared"])
def test_an_oversized_pdf_is_not_kept_and_the_platform_renders_its_own(
    store, pdf_server, undeclared_length
):
    big = pdf_bytes("too big", size=200_000)
    link = pdf_server.serve("/big.pdf", Answer(200, big, undeclared_length=undeclared_length))
    ids = stored_invoice(link)

    assert archive(ids, store, invoice_pdf_max_bytes=64 * 1024) == "generated"

    row = kept(ids)
    assert row.source == "generated"
    assert row.size_bytes < 64 * 1024
    assert store.get(row.store_key) != big


def test_a_5xx_is_retried_and_nothing_is_kept_until_the_pdf_comes(store, pdf_server):
    content = pdf_bytes("after an outage")
    link = pdf_server.serve("/flaky.pdf", Answer(503, b"busy"), Answer(200, content))
    ids = stored_invoice(link)

    with pytest.raises(DownloadUnavailable, match="503"):
        archive(ids, store)
    with new_session() as session:
        assert find_archive(session, invoice_id=ids.invoice) is None
    assert list(store.list()) == []

    assert archive(ids, store) == "stripe"
    assert store.get(kept(ids).store_key) == content
    assert pdf_server.hits["/flaky.pdf"] == 2


def test_a_batch_is_fetched_side_by_side_and_a_5xx_stops_only_its_own_invoice(store, pdf_server):
    contents = [pdf_bytes(f"invoice {n}") for n in range(4)]
    # Each answer takes a while, as Stripe's file server does at internet distance.
    links = [
        pdf_server.serve(f"/{n}.pdf", Answer(200, content, delay=0.3))
        for n, content in enumerate(contents)
    ]
    flaky = pdf_server.serve("/flaky.pdf", Answer(503, b"busy", delay=0.3))
    batch = [stored_invoice(link) for link in links]
    stopped = stored_invoice(flaky)

    with ThreadPoolExecutor(max_workers=8) as downloads:
        outcomes = archive_invoices(
            ctx=billing_context(),
            store=store,
            invoice_ids=[ids.invoice for ids in [*batch, stopped]],
            transaction=transaction,
            downloads=downloads,
        )

    assert [outcomes[ids.invoice] for ids in batch] == ["stripe"] * 4
    assert isinstance(outcomes[stopped.invoice], DownloadUnavailable)
    assert [store.get(kept(ids).store_key) for ids in batch] == contents
    with new_session() as session:
        assert find_archive(session, invoice_id=stopped.invoice) is None
    assert pdf_server.most_at_once > 1  # side by side, not one after the other


def test_the_task_retries_only_the_invoices_a_temporary_failure_stopped(pdf_server):
    steady = [pdf_server.serve(f"/{n}.pdf", Answer(200, pdf_bytes(f"{n}"))) for n in range(3)]
    flaky = pdf_server.serve("/flaky.pdf", Answer(503, b"busy"), Answer(200, pdf_bytes("later")))
    batch = [stored_invoice(link) for link in [*steady, flaky]]

    # Eagerly, as in a worker: the retry runs at once, with only the stopped invoice.
    archive_invoice_pdf.apply(args=[[ids.invoice for ids in batch]])

    assert [kept(ids).source for ids in batch] == ["stripe"] * 4
    assert pdf_server.hits["/flaky.pdf"] == 2
    assert [pdf_server.hits[f"/{n}.pdf"] for n in range(3)] == [1, 1, 1]


def test_a_free_invoice_without_a_pdf_gets_the_platforms_own(store):
    ids = stored_invoice(None, amount=0)

    assert archive(ids, store) == "generated"

    row = kept(ids)
    assert row.source == "generated"
    assert store.get(row.store_key).startswith(b"%PDF-")


def test_an_invoice_kept_while_open_is_kept_again_once_paid(store, pdf_server):
    open_pdf, paid_pdf = pdf_bytes("amount due"), pdf_bytes("paid")
    link = pdf_server.serve("/pdf", Answer(200, open_pdf), Answer(200, paid_pdf))
    ids = stored_invoice(link, status="open")
    assert archive(ids, store) == "stripe"
    assert kept(ids).invoice_status == "open"

    paid = stripe_event("invoice.paid", ids, created=2_000_000_000)
    paid["data"]["object"]["invoice_pdf"] = link
    process_ok(paid)
    assert archive(ids, store) == "stripe"

    row = kept(ids)
    assert row.invoice_status == "paid"
    assert store.get(row.store_key) == paid_pdf
    # The open copy is not overwritten: each status has a key of its own.
    assert store.get(archive_key(ids.invoice, "open")) == open_pdf
    assert archive(ids, store) == "unchanged"


def test_the_nightly_fill_queues_invoices_without_a_kept_pdf(tmp_path):
    store = open_store(f"file://{tmp_path}/invoices")
    missing, archived = stored_invoice(None), stored_invoice(None)
    archive(archived, store)

    queued: list[str] = []
    queue_missing_archives(queued.append)

    assert missing.invoice in queued
    assert archived.invoice not in queued
