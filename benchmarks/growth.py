"""`webhook_events` as it grows: ingest, sweep, admin list and detail, and the dedup check at
0, 1 million and 10 million rows.

Command (from the repository root; PostgreSQL running locally):

    make bench
    .venv/bin/python benchmarks/growth.py [--sizes 0,1000000,10000000] [--events 20000]

One throwaway database (created, migrated, dropped at the end, whatever happens). Rows are
generated inside PostgreSQL (tests/support/event_rows.py: about 700 bytes of JSON each, one
in 97 `failed`, the rest `processed`), spread over the twelve
months before this one, each month in its partition, as a year of history would be; the
`webhook_event_ids` rows are written beside them (the insert trigger is bypassed for the bulk
fill only, with session_replication_role). At each size:

* ingest: `EventStore` (the endpoint's own writer, api/ingest.py) storing `--events` new
  4 KB events from 64 concurrent callers, into this month's partition; events/s, best of
  three. Beside it, in turns, the same on a second database kept empty (truncated before each
  run): the ratio of the two is the cost of the size, whatever the machine's load does
  meanwhile. Only the database statement depends on the table's size, so the HTTP side
  (measured by benchmarks/ingest.py) is left out;
  The PostgreSQL backends' CPU per stored event is reported beside it (from /proc);
* dedup: the same number of deliveries of events stored before (old months'), through the
  same writer: events/s of duplicates;
* sweep: the sweep's claim statement (db/outbox.py), in a transaction rolled back, median of
  20 runs: with nothing stale (its every-minute cost), then with 100 rows left `received` an
  hour ago (`+100`: its cost with work to do);
* admin list: `list_webhook_events` (the route's function) with no filter, `status=failed` and
  `type=charge.succeeded`, 100 rows, median of 20;
* admin detail: `get_webhook_event` on 200 random stored ids, median.

Targets (the issue): ingest within 10 % of the empty table's, sweep < 50 ms, admin list page
< 100 ms. Environment: BENCH_PG_ADMIN_URL (default postgresql://postgres@127.0.0.1:5432/
postgres). The 10 million rows take about 8 GB of disk while the run lasts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import invoice_paid_event  # noqa: E402
from scratch import throwaway_database  # noqa: E402

from tests.support.event_rows import insert_events  # noqa: E402

HISTORY_MONTHS = 12
CONCURRENCY = 64
TARGET_INGEST_LOSS = 0.10
TARGET_SWEEP_MS = 50.0
TARGET_LIST_MS = 100.0
STUCK_ROWS = 100


@dataclass
class Stage:
    rows: int
    ingest_rate: float
    empty_rate: float
    pg_cpu_us: float
    dedup_rate: float
    sweep_ms: float
    stuck_sweep_ms: float
    list_ms: dict[str, float]
    detail_ms: float
    database_mb: float


def parse_options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0,1000000,10000000", help="table sizes to measure")
    parser.add_argument("--events", type=int, default=20_000, help="events per ingest run")
    parser.add_argument(
        "--resume",
        default="",
        help="DATABASE:ROWS, a bench database left filled to ROWS by a run cut short",
    )
    return parser.parse_args()


def history_months(today: date) -> list[date]:
    months = []
    year, month = today.year, today.month
    for _ in range(HISTORY_MONTHS):
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
        months.append(date(year, month, 1))
    return sorted(months)


def fill(url: str, have: int, want: int, months: list[date]) -> None:
    """Rows have+1..want, in month order over `months` (each month its equal share)."""
    per_month = -(-want // len(months))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")  # the bulk fill skips the trigger
        for index, month in enumerate(months):
            first = max(have + 1, index * per_month + 1)
            last = min(want, (index + 1) * per_month)
            if first > last:
                continue
            conn.execute("SELECT webhook_events_ensure_partition(%s)", (month,))
            started = time.monotonic()
            spacing = f"{int(30 * 86400 * 1000 / per_month)} milliseconds"
            insert_events(
                conn,
                tag="hist",
                first=first,
                count=last - first + 1,
                start=f"'{month.isoformat()}'::timestamptz + interval '1 hour'",
                spacing=spacing,
                month=month,
                pending_every=10**15,  # history is settled; stuck rows are added per stage
            )
            conn.execute(
                "INSERT INTO webhook_event_ids (stripe_event_id, row_id)"
                " SELECT stripe_event_id, id FROM webhook_events"
                " WHERE id BETWEEN webhook_events_month_first_id(%s) + %s"
                " AND webhook_events_month_first_id(%s) + %s",
                (month, first, month, last),
            )
            took = time.monotonic() - started
            print(f"    {month:%Y-%m}: rows {first:,}..{last:,} in {took:.0f} s", flush=True)
        conn.execute("VACUUM ANALYZE webhook_events")
        conn.execute("VACUUM ANALYZE webhook_event_ids")


def new_events(count: int, tag: str) -> list[bytes]:
    now = int(time.time())
    return [invoice_paid_event(f"{tag}{i:08d}", i % 64, now) for i in range(count)]


async def store_all(libpq_url: str, bodies: list[bytes]) -> tuple[float, float]:
    """Store the events through EventStore from CONCURRENCY callers; events/s, and the
    PostgreSQL backends' CPU per event in microseconds (the writers' connections are opened
    by this run, so their whole CPU time is this run's)."""
    import orjson

    from api.ingest import EventStore, IncomingEvent

    events = []
    for body in bodies:
        parsed = orjson.loads(body)
        events.append(
            IncomingEvent(
                stripe_event_id=parsed["id"],
                type=parsed["type"],
                api_version=parsed["api_version"],
                livemode=False,
                account=None,
                created=parsed["created"],
                payload=body,
                status="received",
            )
        )
    store = EventStore(libpq_url)
    await store.open()
    queue = iter(events)

    async def caller() -> None:
        for event in queue:
            await store.store(event)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - started
    backend_cpu = backends_cpu_seconds(libpq_url)
    await store.close()
    return len(events) / elapsed, backend_cpu / len(events) * 1e6


def backends_cpu_seconds(libpq_url: str) -> float:
    """User and system CPU of every other backend of this database (read from /proc: the
    server runs on this machine)."""
    with psycopg.connect(libpq_url) as conn:
        pids = [
            pid
            for (pid,) in conn.execute(
                "SELECT pid FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ]
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def timed_ms(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def sweep_timing() -> float:
    """The sweep's claim statement (db/outbox.py), median ms of 20 runs, each rolled back."""
    from sqlalchemy import func

    from db.models import PENDING_STATUSES, WebhookEvent
    from db.outbox import claim_stale_rows
    from db.session import new_session

    with new_session() as session:

        def sweep() -> None:
            try:
                claim_stale_rows(
                    session,
                    model=WebhookEvent,
                    pending=WebhookEvent.status.in_(PENDING_STATUSES),
                    last_touched=func.greatest(
                        WebhookEvent.received_at, WebhookEvent.enqueued_at, WebhookEvent.claimed_at
                    ),
                    stale_after_seconds=300,
                    limit=1000,
                    returning=(WebhookEvent.id, WebhookEvent.type),
                )
            finally:
                session.rollback()  # measured, not claimed: every run sees the same rows

        return timed_ms(sweep, 20)


def measure_queries(stored_ids: list[str]) -> tuple[float, dict[str, float], float]:
    from api.routes.admin_events import get_webhook_event, list_webhook_events
    from db.models import EventStatus
    from db.session import new_session

    with new_session() as session:
        sweep_ms = sweep_timing()
        filters = {
            "newest": {},
            "status=failed": {"status": EventStatus.FAILED},
            "type=charge.succeeded": {"type": "charge.succeeded"},
        }
        list_ms = {}
        for label, arguments in filters.items():
            list_ms[label] = timed_ms(
                lambda a=arguments: list_webhook_events(session, limit=100, **a), 20
            )
            session.rollback()
        sample = random.sample(stored_ids, min(200, len(stored_ids)))
        details = [timed_ms(lambda i=i: get_webhook_event(session, i), 1) for i in sample]
        session.rollback()
    return sweep_ms, list_ms, statistics.median(details)


def database_mb(url: str) -> float:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT pg_database_size(current_database())").fetchone()[0] / 2**20


def measure(url: str, empty_url: str, rows: int, events: int, round_tag: str) -> Stage:
    stored = [f"evt_hist_{g}" for g in random.sample(range(1, rows + 1), min(events, rows))]
    rates, empty_rates = [], []
    for attempt in range(3):
        with psycopg.connect(empty_url, autocommit=True) as conn:
            conn.execute("TRUNCATE webhook_events, webhook_event_ids")
        empty_rates.append(
            asyncio.run(store_all(empty_url, new_events(events, f"{round_tag}e{attempt}")))[0]
        )
        rates.append(asyncio.run(store_all(url, new_events(events, f"{round_tag}n{attempt}"))))
    # Duplicates: old months' events if there are any, else the ones just stored.
    duplicates = stored or [f"evt_{round_tag}n0{i:08d}" for i in range(events)]
    now = int(time.time())
    dup_bodies = [
        invoice_paid_event(d.removeprefix("evt_"), i % 64, now) for i, d in enumerate(duplicates)
    ]
    dedup_rate = asyncio.run(store_all(url, dup_bodies))[0]
    with psycopg.connect(url, autocommit=True) as conn:
        # Settle what was just stored, as the workers would have.
        conn.execute(
            "UPDATE webhook_events SET status = 'processed' WHERE status = 'received'"
            " AND received_at > now() - interval '1 hour'"
        )
        conn.execute("VACUUM ANALYZE webhook_events")
    sweep_ms, list_ms, detail_ms = measure_queries(
        stored or [f"evt_{round_tag}n0{i:08d}" for i in range(min(events, 1000))]
    )
    # The sweep again with work to do: STUCK_ROWS left `received` an hour ago this month.
    with psycopg.connect(url, autocommit=True) as conn:
        insert_events(
            conn,
            tag=f"{round_tag}stuck",
            first=1,
            count=STUCK_ROWS,
            start="now() - interval '1 hour'",
            pending_every=1,
        )
    stuck_sweep_ms = sweep_timing()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE webhook_events SET status = 'processed' WHERE status = 'received'"
            " AND received_at < now() - interval '30 minutes'"
        )
    best = max(rates)
    return Stage(
        rows,
        best[0],
        max(empty_rates),
        best[1],
        dedup_rate,
        sweep_ms,
        stuck_sweep_ms,
        list_ms,
        detail_ms,
        database_mb(url),
    )


def report(stages: list[Stage], *, header: bool = True) -> None:
    if header:
        print(
            f"\n{'rows':>12}{'ingest/s':>10}{'empty/s':>9}{'ratio':>7}{'PG us':>7}{'dup/s':>9}"
            f"{'sweep ms':>10}{'+100 ms':>9}"
            f"{'list ms':>9}{'failed':>8}{'by type':>9}{'detail ms':>11}{'DB MB':>9}"
        )
    for s in stages:
        print(
            f"{s.rows:>12,}{s.ingest_rate:>10,.0f}{s.empty_rate:>9,.0f}"
            f"{s.ingest_rate / s.empty_rate:>7.2f}{s.pg_cpu_us:>7.0f}{s.dedup_rate:>9,.0f}"
            f"{s.sweep_ms:>10.2f}{s.stuck_sweep_ms:>9.2f}{s.list_ms['newest']:>9.2f}{s.list_ms['status=failed']:>8.2f}"
            f"{s.list_ms['type=charge.succeeded']:>9.2f}{s.detail_ms:>11.2f}{s.database_mb:>9,.0f}"
        )
    last = stages[-1]
    worst_list = max(max(s.list_ms.values()) for s in stages)
    worst_sweep = max(max(s.sweep_ms, s.stuck_sweep_ms) for s in stages)
    ratio = last.ingest_rate / last.empty_rate
    print(
        f"ingest at {last.rows:,} rows: {ratio:.2f} of an empty table's (target >= "
        f"{1 - TARGET_INGEST_LOSS:.2f}: {'met' if ratio >= 1 - TARGET_INGEST_LOSS else 'MISSED'}); "
        f"worst sweep {worst_sweep:.1f} ms (target < {TARGET_SWEEP_MS:.0f}: "
        f"{'met' if worst_sweep < TARGET_SWEEP_MS else 'MISSED'}); worst list page "
        f"{worst_list:.1f} ms (target < {TARGET_LIST_MS:.0f}: "
        f"{'met' if worst_list < TARGET_LIST_MS else 'MISSED'})"
    )


@contextlib.contextmanager
def resumed_database(admin_url: str, name: str) -> Iterator[str]:
    """A bench database a run left behind (cut short by a server restart, say): used as it
    is, and dropped on the way out like a throwaway one."""
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def main() -> None:
    opts = parse_options()
    sizes = [int(n) for n in opts.sizes.split(",")]
    admin_url = os.environ.get(
        "BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    print(f"disk free before: {shutil.disk_usage(ROOT).free / 2**30:.0f} GiB", flush=True)
    with contextlib.ExitStack() as stack:
        have = 0
        if opts.resume:
            name, _, rows = opts.resume.partition(":")
            url = stack.enter_context(resumed_database(admin_url, name))
            have = int(rows)
        else:
            url = stack.enter_context(throwaway_database(admin_url, name="growth"))
        empty_url = stack.enter_context(throwaway_database(admin_url, name="growth_empty"))
        os.environ.update(
            DATABASE_URL=url.replace("postgresql://", "postgresql+psycopg://", 1),
            SENTRY_DSN="",
        )
        from core.settings import get_settings, load_settings
        from db.migrate import upgrade

        upgrade(get_settings())
        upgrade(load_settings(database_url=empty_url))
        months = history_months(date.today())
        stages: list[Stage] = []
        for size in sizes:
            print(f"filling to {size:,} rows", flush=True)
            started = time.monotonic()
            fill(url, have, size, months)
            have = max(have, size)
            print(f"  filled in {time.monotonic() - started:.0f} s; measuring", flush=True)
            stages.append(measure(url, empty_url, size, opts.events, f"g{size}"))
            # Each size's line as soon as it is known: a run cut short keeps what it measured.
            report(stages[-1:], header=not stages[:-1])
            print(
                f"  DB {stages[-1].database_mb:,.0f} MB, disk free "
                f"{shutil.disk_usage(ROOT).free / 2**30:.0f} GiB",
                flush=True,
            )
        report(stages)


if __name__ == "__main__":
    main()
