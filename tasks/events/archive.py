"""Old months of `webhook_events` leave the database for the archive store, and can come back.

With WEBHOOK_EVENTS_RETENTION_MONTHS = N, a daily job archives every month that ended more
than N months ago (the current month and the N before it stay online): the month's partition
is detached (no writer can touch it any more), written to the store as gzipped JSON lines in
parts of ROWS_PER_PART rows with a manifest naming each part's rows, size and SHA-256, read
back and checked, and only then dropped, with its ids in `webhook_event_ids`. A month that
still holds pending rows (the outbox's) is left for a later day. A run that dies halfway
leaves a detached table, which the next run finishes; the manifest is written last, so a
month without one was never fully archived.

`restore_month` reverses it: every part is checked against the manifest, the month's
partition is made again, and the rows are inserted through the table (so their Stripe ids are
claimed again), all in one transaction. The partition of the rows from before migration 0016
(`webhook_events_legacy`, row ids below 2^40) is archived and restored the same way, under the
name `legacy`, once its newest row is past the horizon.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime

import psycopg
from psycopg import sql

from core.object_store import ObjectNotFound, ObjectStore, open_store
from core.settings import Settings, get_settings
from tasks.celery_app import app

log = logging.getLogger(__name__)

ARCHIVE_PREFIX = "webhook-events"
ROWS_PER_PART = 50_000
INSERT_CHUNK = 5_000
LEGACY = "legacy"
LEGACY_TABLE = "webhook_events_legacy"
LEGACY_ID_BOUND = 1 << 40
PENDING = ("received", "queued", "processing")


class ArchiveError(Exception):
    """The archive cannot be used as asked (missing, damaged, or the month is online)."""


@dataclass(frozen=True)
class MonthTable:
    label: str  # YYYY-MM, or `legacy`
    table: str
    attached: bool


def table_of(label: str) -> str:
    if label == LEGACY:
        return LEGACY_TABLE
    month = datetime.strptime(label, "%Y-%m").date()  # ValueError for anything else
    return f"webhook_events_{month:%Y_%m}"


def month_of(label: str) -> date:
    return datetime.strptime(label, "%Y-%m").date()


def manifest_key(label: str) -> str:
    return f"{ARCHIVE_PREFIX}/{label}/manifest.json"


def expired_months(conn: psycopg.Connection, *, retention_months: int) -> list[MonthTable]:
    """The month tables (attached or left detached by a run that died) past the horizon."""
    rows = conn.execute(
        """
        WITH horizon AS (
            SELECT (date_trunc('month', now() AT TIME ZONE 'UTC')
                    - make_interval(months => %(n)s))::date AS first_kept
        )
        SELECT to_char(to_date(substr(c.relname, 16), 'YYYY_MM'), 'YYYY-MM'), c.relname,
               c.relispartition
        FROM pg_class c, horizon
        WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace
          AND c.relname ~ '^webhook_events_[0-9]{4}_[0-9]{2}$'
          AND to_date(substr(c.relname, 16), 'YYYY_MM') < horizon.first_kept
        ORDER BY c.relname
        """,
        {"n": retention_months},
    ).fetchall()
    months = [MonthTable(label, table, attached) for label, table, attached in rows]
    legacy = conn.execute(
        "SELECT c.relispartition FROM pg_class c WHERE c.oid = to_regclass(%s)", (LEGACY_TABLE,)
    ).fetchone()
    if legacy is not None:
        newest_is_old = conn.execute(
            sql.SQL(
                "SELECT coalesce(max(received_at) < date_trunc('month', now() AT TIME ZONE 'UTC')"
                " - make_interval(months => %s), true) FROM {}"
            ).format(sql.Identifier(LEGACY_TABLE)),
            (retention_months,),
        ).fetchone()[0]
        if newest_is_old:
            months.insert(0, MonthTable(LEGACY, LEGACY_TABLE, legacy[0]))
    return months


def archive_month(conn: psycopg.Connection, store: ObjectStore, month: MonthTable) -> int | None:
    """Detach, write, check and drop one month; its row count, or None if it still holds
    pending rows. `conn` must be in autocommit mode (each step is its own transaction)."""
    table = sql.Identifier(month.table)
    if month.attached:
        with conn.transaction():
            # Writers (a replay, a late settle) finish first and none start: the check holds.
            conn.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(table))
            pending = conn.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE status = ANY(%s)").format(table),
                (list(PENDING),),
            ).fetchone()[0]
            if pending:
                log.warning(
                    "webhook_events %s: %d pending rows, not archived", month.label, pending
                )
                return None
            conn.execute(sql.SQL("ALTER TABLE webhook_events DETACH PARTITION {}").format(table))
    manifest = _write_parts(conn, store, month)
    _check_parts(store, manifest)
    store.put(
        manifest_key(month.label),
        json.dumps(manifest, indent=2).encode(),
        content_type="application/json",
    )
    with conn.transaction():
        if manifest["rows"]:
            conn.execute(
                "DELETE FROM webhook_event_ids WHERE row_id BETWEEN %s AND %s",
                (manifest["min_id"], manifest["max_id"]),
            )
        conn.execute(sql.SQL("DROP TABLE {}").format(table))
    log.info("webhook_events %s: %d rows archived and dropped", month.label, manifest["rows"])
    return int(manifest["rows"])


def _write_parts(conn: psycopg.Connection, store: ObjectStore, month: MonthTable) -> dict:
    parts, total, min_id, max_id = [], 0, None, None
    query = sql.SQL("SELECT id, row_to_json(t)::text FROM {} AS t ORDER BY id").format(
        sql.Identifier(month.table)
    )
    with conn.transaction(), conn.cursor(name="archive_rows") as cursor:
        cursor.itersize = 2_000
        cursor.execute(query)
        while rows := cursor.fetchmany(ROWS_PER_PART):
            data = gzip.compress("".join(f"{line}\n" for _, line in rows).encode(), mtime=0)
            key = f"{ARCHIVE_PREFIX}/{month.label}/part-{len(parts):05d}.jsonl.gz"
            store.put(key, data, content_type="application/gzip")
            parts.append(
                {
                    "key": key,
                    "rows": len(rows),
                    "bytes": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
            )
            total += len(rows)
            min_id = rows[0][0] if min_id is None else min_id
            max_id = rows[-1][0]
    return {
        "format": 1,
        "month": month.label,
        "table": month.table,
        "rows": total,
        "min_id": min_id,
        "max_id": max_id,
        "archived_at": datetime.now(UTC).isoformat(),
        "parts": parts,
    }


def _check_parts(store: ObjectStore, manifest: dict) -> None:
    """Every part reads back with its checksum: nothing is dropped on a failed write."""
    for part in manifest["parts"]:
        if hashlib.sha256(store.get(part["key"])).hexdigest() != part["sha256"]:
            raise ArchiveError(f"{part['key']} does not match its checksum")


def restore_month(conn: psycopg.Connection, store: ObjectStore, label: str) -> tuple[int, int]:
    """Bring an archived month back online; (rows in the archive, rows restored). A row
    whose Stripe id was stored again meanwhile is left out."""
    table = table_of(label)
    try:
        manifest = json.loads(store.get(manifest_key(label)))
    except ObjectNotFound:
        raise ArchiveError(f"no archive of {label}") from None
    if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is not None:
        raise ArchiveError(f"{label} is online ({table} exists)")
    restored = 0
    with conn.transaction():
        if label == LEGACY:
            conn.execute(
                sql.SQL(
                    "CREATE TABLE {} PARTITION OF webhook_events FOR VALUES FROM (MINVALUE) TO ({})"
                ).format(sql.Identifier(table), sql.Literal(LEGACY_ID_BOUND))
            )
        else:
            conn.execute("SELECT webhook_events_ensure_partition(%s)", (month_of(label),))
        for part in manifest["parts"]:
            data = store.get(part["key"])
            if hashlib.sha256(data).hexdigest() != part["sha256"]:
                raise ArchiveError(f"{part['key']} does not match its checksum")
            lines = gzip.decompress(data).decode().splitlines()
            for start in range(0, len(lines), INSERT_CHUNK):
                chunk = "[" + ",".join(lines[start : start + INSERT_CHUNK]) + "]"
                restored += len(
                    conn.execute(
                        # json, not jsonb: each payload goes back as it was kept, byte for
                        # byte, and one jsonb cannot hold (a NUL character) is no error.
                        "INSERT INTO webhook_events SELECT * FROM"
                        " json_populate_recordset(NULL::webhook_events, %s::json) RETURNING 1",
                        (chunk,),
                    ).fetchall()
                )
    log.info("webhook_events %s: %d of %d rows restored", label, restored, manifest["rows"])
    return int(manifest["rows"]), restored


def archive_store(settings: Settings) -> ObjectStore:
    return open_store(settings.invoice_archive_url, endpoint_url=settings.s3_endpoint_url)


def archive_expired_months(settings: Settings) -> dict[str, int | None]:
    """Archive every month past WEBHOOK_EVENTS_RETENTION_MONTHS; rows per month (None: left
    for later, it holds pending rows). Nothing when the setting is unset."""
    if settings.webhook_events_retention_months is None:
        return {}
    store = archive_store(settings)
    done: dict[str, int | None] = {}
    with psycopg.connect(settings.libpq_url, autocommit=True) as conn:
        months = expired_months(conn, retention_months=settings.webhook_events_retention_months)
        for month in months:
            done[month.label] = archive_month(conn, store, month)
    return done


@app.task(name="billing.archive_event_months", ignore_result=True)
def archive_event_months() -> dict[str, int | None]:
    """Archive the months of webhook_events past the retention (daily)."""
    return archive_expired_months(get_settings())
