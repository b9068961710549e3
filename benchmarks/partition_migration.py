"""Migration 0016 (webhook_events partitioned by month) on an unpartitioned table of a million
rows: how long the exclusive lock is held, and that every row and id survives.

Command (from the repository root; PostgreSQL running locally):

    make bench
    .venv/bin/python benchmarks/partition_migration.py [--rows 1000000]

A throwaway database is migrated to the revision before 0016, filled inside PostgreSQL
(tests/support/event_rows.py: about 700-byte events, one in 1,000 pending), analysed, then
upgraded to 0016 while the time is taken; the rows are then counted and summed by id on both
sides, the Stripe ids compared with webhook_event_ids, and one old id delivered again must be
refused. The suite runs the same on 20,000 rows (tests/test_event_partitions.py).
Environment: BENCH_PG_ADMIN_URL (default postgresql://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scratch import throwaway_database  # noqa: E402

from tests.support.event_rows import insert_events  # noqa: E402

PARTITIONED_REVISION = "0016"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    opts = parser.parse_args()
    admin_url = os.environ.get(
        "BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    with throwaway_database(admin_url, name="partition_migration") as url:
        from alembic.script import ScriptDirectory

        from core.settings import load_settings
        from db.migrate import alembic_config, upgrade

        settings = load_settings(database_url=url)
        previous = (
            ScriptDirectory.from_config(alembic_config(settings))
            .get_revision(PARTITIONED_REVISION)
            .down_revision
        )
        upgrade(settings, str(previous))
        started = time.monotonic()
        with psycopg.connect(url, autocommit=True) as conn:
            insert_events(conn, tag="legacy", first=1, count=opts.rows)
            conn.execute("VACUUM ANALYZE webhook_events")
            before = conn.execute(
                "SELECT count(*), sum(id), pg_total_relation_size('webhook_events')"
                " FROM webhook_events"
            ).fetchone()
        print(
            f"filled {before[0]:,} rows ({before[2] / 2**20:,.0f} MB with indexes)"
            f" in {time.monotonic() - started:.0f} s",
            flush=True,
        )

        started = time.monotonic()
        upgrade(settings, PARTITIONED_REVISION)
        took = time.monotonic() - started

        with psycopg.connect(url, autocommit=True) as conn:
            after = conn.execute("SELECT count(*), sum(id) FROM webhook_events").fetchone()
            ids = conn.execute(
                "SELECT count(*) FROM webhook_event_ids i JOIN webhook_events e"
                " ON e.id = i.row_id AND e.stripe_event_id = i.stripe_event_id"
            ).fetchone()[0]
            again = conn.execute(
                "INSERT INTO webhook_events (stripe_event_id, type, livemode, payload)"
                " VALUES ('evt_legacy_1', 'invoice.paid', false, '{}') RETURNING id"
            ).fetchall()
        ok = after == before[:2] and ids == before[0] and again == []
        print(
            f"migration 0016 on {before[0]:,} rows: {took:.1f} s under the exclusive lock;"
            f" rows and ids {'kept' if after == before[:2] else 'CHANGED'}, {ids:,} Stripe ids"
            f" in webhook_event_ids, an old id delivered again "
            f"{'refused' if again == [] else 'STORED TWICE'}"
        )
        if not ok:
            raise SystemExit("FAIL")


if __name__ == "__main__":
    main()
