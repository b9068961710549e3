"""`webhook_events` by month: rows land in their month's partition, a Stripe event id is
stored once across all of them, and an existing unpartitioned table migrates in place.

The migration test here uses 20,000 rows to stay quick; benchmarks/partition_migration.py
(`make bench`) runs the same migration on a million and reports its time.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from datetime import date

import psycopg
import pytest
from alembic import command
from alembic.script import ScriptDirectory

from core.settings import load_settings
from db.migrate import alembic_config, upgrade
from tests.conftest import ADMIN_URL, SERVER_URL, WEBHOOK_SECRET
from tests.support.event_rows import insert_events
from tests.support.events import count_rows, encode, make_event, signed

WEBHOOK = "/api/stripe/webhook"
PARTITIONED_REVISION = "0016"


def partition_of(conn: psycopg.Connection, stripe_event_id: str) -> str:
    return conn.execute(
        "SELECT tableoid::regclass::text FROM webhook_events WHERE stripe_event_id = %s",
        (stripe_event_id,),
    ).fetchone()[0]


def test_a_new_event_lands_in_this_months_partition(client, settings):
    event = make_event("invoice.paid")
    body = encode(event)
    assert (
        client.post(WEBHOOK, content=body, headers=signed(body, WEBHOOK_SECRET)).status_code == 200
    )

    with psycopg.connect(settings.libpq_url) as conn:
        this_month = conn.execute(
            "SELECT 'webhook_events_' || to_char(now() AT TIME ZONE 'UTC', 'YYYY_MM')"
        ).fetchone()[0]
        assert partition_of(conn, event["id"]) == this_month


def test_an_event_stored_in_an_earlier_month_is_a_duplicate_now(client, settings):
    event = make_event("invoice.paid")
    month = date(2024, 1 + secrets.randbelow(12), 1)
    with psycopg.connect(settings.libpq_url, autocommit=True) as conn:
        conn.execute("SELECT webhook_events_ensure_partition(%s)", (month,))
        conn.execute(
            "INSERT INTO webhook_events (id, stripe_event_id, type, livemode, payload)"
            " VALUES (webhook_events_month_first_id(%s) + %s, %s, 'invoice.paid', false, '{}')",
            (month, secrets.randbelow(10**9), event["id"]),
        )
        assert partition_of(conn, event["id"]) == f"webhook_events_{month:%Y_%m}"

    body = encode(event)
    response = client.post(WEBHOOK, content=body, headers=signed(body, WEBHOOK_SECRET))

    assert response.json()["duplicate"] is True
    assert count_rows(event["id"]) == 1


def test_the_admin_api_finds_an_event_of_an_earlier_month(client, settings, admin_headers):
    event = make_event("invoice.paid")
    month = date(2023, 1 + secrets.randbelow(12), 1)
    with psycopg.connect(settings.libpq_url, autocommit=True) as conn:
        conn.execute("SELECT webhook_events_ensure_partition(%s)", (month,))
        conn.execute(
            "INSERT INTO webhook_events (id, stripe_event_id, type, livemode, payload, status)"
            " VALUES (webhook_events_month_first_id(%s) + %s, %s, 'invoice.paid', false, '{}',"
            " 'processed')",
            (month, secrets.randbelow(10**9), event["id"]),
        )

    response = client.get(f"/api/admin/webhook-events/{event['id']}", headers=admin_headers)

    assert response.status_code == 200
    assert response.json()["status"] == "processed"


def test_rows_of_a_month_without_partition_wait_in_default_and_move_in_when_it_is_made(settings):
    # A far month of this test's own (nobody else makes it), as if maintenance had not run.
    month = date(2100 + secrets.randbelow(800), 1 + secrets.randbelow(12), 1)
    event_id = f"evt_{uuid.uuid4().hex}"
    with psycopg.connect(settings.libpq_url, autocommit=True) as conn:
        (row_id,) = conn.execute(
            "INSERT INTO webhook_events (id, stripe_event_id, type, livemode, payload)"
            " VALUES (webhook_events_month_first_id(%s) + 1, %s, 'invoice.paid', false, '{}')"
            " RETURNING id",
            (month, event_id),
        ).fetchone()
        assert partition_of(conn, event_id) == "webhook_events_default"

        created = conn.execute("SELECT webhook_events_ensure_partition(%s)", (month,)).fetchone()

        assert created == (True,)
        assert partition_of(conn, event_id) == f"webhook_events_{month:%Y_%m}"
        assert conn.execute(
            "SELECT stripe_event_id FROM webhook_events WHERE id = %s", (row_id,)
        ).fetchone() == (event_id,)


def test_the_daily_job_makes_the_coming_months_partitions(settings):
    from tasks.events.partitions import maintain_event_partitions

    maintain_event_partitions()

    with psycopg.connect(settings.libpq_url) as conn:
        missing = conn.execute(
            "SELECT m FROM generate_series(0, 3) AS m WHERE to_regclass('webhook_events_'"
            " || to_char((now() AT TIME ZONE 'UTC') + make_interval(months => m), 'YYYY_MM'))"
            " IS NULL"
        ).fetchall()
    assert missing == []


# --- Migrating an unpartitioned table ------------------------------------------------------


@pytest.fixture
def unpartitioned_database() -> Iterator[str]:
    """A database of its own at the revision before 0016, with 20,000 rows in webhook_events."""
    name = f"billing_migration_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{SERVER_URL}/{name}"
    try:
        settings = load_settings(database_url=url)
        previous = (
            ScriptDirectory.from_config(alembic_config(settings))
            .get_revision(PARTITIONED_REVISION)
            .down_revision
        )
        upgrade(settings, str(previous))
        with psycopg.connect(url, autocommit=True) as conn:
            insert_events(conn, tag="legacy", first=1, count=20_000, pending_every=1000)
        yield url
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_an_unpartitioned_table_migrates_in_place_keeping_rows_ids_and_dedup(
    unpartitioned_database,
):
    url = unpartitioned_database
    with psycopg.connect(url) as conn:
        before = conn.execute(
            "SELECT count(*), sum(id), min(id), max(id) FROM webhook_events"
        ).fetchone()

    upgrade(load_settings(database_url=url))

    with psycopg.connect(url, autocommit=True) as conn:
        # Every row kept, with its id (a task queued before the migration still finds it).
        after = conn.execute(
            "SELECT count(*), sum(id), min(id), max(id) FROM webhook_events_legacy"
        ).fetchone()
        assert after == before
        assert conn.execute("SELECT count(*) FROM webhook_event_ids").fetchone() == (20_000,)
        # An old event delivered again is a duplicate; a new one lands in this month.
        inserted = conn.execute(
            "INSERT INTO webhook_events (stripe_event_id, type, livemode, payload)"
            " VALUES ('evt_legacy_1', 'invoice.paid', false, '{}'),"
            " ('evt_after_migration', 'invoice.paid', false, '{}')"
            " RETURNING stripe_event_id, tableoid::regclass::text"
        ).fetchall()
        this_month = conn.execute(
            "SELECT 'webhook_events_' || to_char(now() AT TIME ZONE 'UTC', 'YYYY_MM')"
        ).fetchone()[0]
        assert inserted == [("evt_after_migration", this_month)]
        # The sweep's and the admin list's plans still use the indexes the legacy table had.
        pending = conn.execute(
            "SELECT count(*) FROM webhook_events"
            " WHERE status IN ('received', 'queued', 'processing')"
        ).fetchone()
        assert pending == (21,)  # 20 of the legacy rows, and the new one
        newest = conn.execute(
            "SELECT stripe_event_id FROM webhook_events ORDER BY id DESC LIMIT 1"
        ).fetchone()
        assert newest == ("evt_after_migration",)

    # Down and up again: every row and its id come back, and new ids do not meet old ones.
    settings = load_settings(database_url=url)
    previous = ScriptDirectory.from_config(alembic_config(settings)).get_revision(
        PARTITIONED_REVISION
    )
    command.downgrade(alembic_config(settings), str(previous.down_revision))
    upgrade(settings)
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM webhook_events").fetchone() == (20_001,)
        assert conn.execute("SELECT count(*) FROM webhook_event_ids").fetchone() == (20_001,)
        conn.execute(
            "INSERT INTO webhook_events (stripe_event_id, type, livemode, payload)"
            " VALUES ('evt_after_round_trip', 'invoice.paid', false, '{}')"
        )
