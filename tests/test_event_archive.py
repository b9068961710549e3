"""Months of webhook_events past the retention go to the archive store and come back.

Each test makes a month of its own (a random month of the last century: no other test or
the daily job's horizon reaches it by accident) in the run's database, and a file:// store in
its temporary directory.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import uuid
from datetime import date
from pathlib import Path

import psycopg
import pytest

from core.object_store import open_store
from tasks.events import archive
from tasks.events.archive import (
    ArchiveError,
    MonthTable,
    archive_month,
    expired_months,
    manifest_key,
    restore_month,
)
from tests.conftest import WEBHOOK_SECRET
from tests.support.event_rows import insert_events
from tests.support.events import encode, make_event, signed

WEBHOOK = "/api/stripe/webhook"


# The 20th century's months, in a random order: each test takes the next, so no two tests of
# a session fill the same month's partition (a random pick collided now and then).
_MONTHS = iter(
    random.SystemRandom().sample(
        [date(year, month, 1) for year in range(1900, 2000) for month in range(1, 13)], 1200
    )
)


def own_month() -> date:
    return next(_MONTHS)


def fill_month(conn: psycopg.Connection, month: date, *, count: int, pending: bool = False) -> str:
    """`count` processed rows (one left `received` if `pending`) in the month; their tag."""
    tag = uuid.uuid4().hex[:12]
    conn.execute("SELECT webhook_events_ensure_partition(%s)", (month,))
    insert_events(
        conn,
        tag=tag,
        first=1,
        count=count,
        start=f"'{month.isoformat()}'::timestamptz + interval '1 day'",
        spacing="1 minute",
        month=month,
        pending_every=count if pending else 10**9,
    )
    return tag


@pytest.fixture
def conn(settings):
    with psycopg.connect(settings.libpq_url, autocommit=True) as connection:
        yield connection


def test_a_month_is_archived_checked_dropped_and_restored(
    conn, tmp_path: Path, client, admin_headers, monkeypatch
):
    monkeypatch.setattr(archive, "ROWS_PER_PART", 50)  # three parts for 120 rows
    month = own_month()
    label, table = f"{month:%Y-%m}", f"webhook_events_{month:%Y_%m}"
    tag = fill_month(conn, month, count=120)
    store = open_store(f"file://{tmp_path}")
    assert MonthTable(label, table, True) in expired_months(conn, retention_months=1)

    assert archive_month(conn, store, MonthTable(label, table, True)) == 120

    assert conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() == (None,)
    manifest = json.loads(store.get(manifest_key(label)))
    assert (manifest["rows"], [p["rows"] for p in manifest["parts"]]) == (120, [50, 50, 20])
    for part in manifest["parts"]:
        data = store.get(part["key"])
        assert hashlib.sha256(data).hexdigest() == part["sha256"]
    first_row = json.loads(gzip.decompress(store.get(manifest["parts"][0]["key"])).splitlines()[0])
    assert first_row["stripe_event_id"] == f"evt_{tag}_1"
    detail = f"/api/admin/webhook-events/evt_{tag}_7"
    assert client.get(detail, headers=admin_headers).status_code == 404

    assert restore_month(conn, store, label) == (120, 120)

    response = client.get(detail, headers=admin_headers)
    assert response.status_code == 200
    assert response.json()["status"] == "processed"
    # Its Stripe id is claimed again: a redelivery is a duplicate.
    event = make_event("invoice.paid", id=f"evt_{tag}_7")
    body = encode(event)
    delivered = client.post(WEBHOOK, content=body, headers=signed(body, WEBHOOK_SECRET))
    assert delivered.json()["duplicate"] is True


def test_a_month_with_pending_rows_stays_online(conn, tmp_path: Path):
    month = own_month()
    label, table = f"{month:%Y-%m}", f"webhook_events_{month:%Y_%m}"
    fill_month(conn, month, count=10, pending=True)

    assert (
        archive_month(conn, open_store(f"file://{tmp_path}"), MonthTable(label, table, True))
        is None
    )

    attached = conn.execute("SELECT relispartition FROM pg_class WHERE relname = %s", (table,))
    assert attached.fetchone() == (True,)


def test_a_damaged_part_restores_nothing(conn, tmp_path: Path):
    month = own_month()
    label, table = f"{month:%Y-%m}", f"webhook_events_{month:%Y_%m}"
    fill_month(conn, month, count=5)
    store = open_store(f"file://{tmp_path}")
    archive_month(conn, store, MonthTable(label, table, True))
    part = json.loads(store.get(manifest_key(label)))["parts"][0]["key"]
    store.put(part, gzip.compress(b'{"id": 1}\n'))

    with pytest.raises(ArchiveError, match="checksum"):
        restore_month(conn, store, label)

    assert conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() == (None,)


def test_restoring_a_month_never_archived_says_so(conn, tmp_path: Path):
    with pytest.raises(ArchiveError, match="no archive of 1899-01"):
        restore_month(conn, open_store(f"file://{tmp_path}"), "1899-01")
