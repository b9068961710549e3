"""Reconciliation speed: 100,000 subscriptions against a local Stripe fake with no latency.

Command (from the repository root; PostgreSQL and Redis running locally):

    make bench

    .venv/bin/python benchmarks/reconcile.py [--count 100000] [--new 50] [--drift 150]
                                             [--gone 20] [--mode live|test] [--rate R]

What it does:

* starts `benchmarks/subscription_list_fake.py` (its own process) serving `--count`
  subscriptions, `--new` of which the platform never saw, `--drift` drifted (in turn:
  cancel_at_period_end set, canceled, plan changed), plus `--gone` local copies Stripe lacks;
* creates a throwaway database, migrates it and seeds the local copies with COPY;
* runs `billing.reconcile_subscriptions`' code in a child process, configured as in
  production through the environment (the rate-limited client at the mode's default rate,
  or `--rate`), and times it;
* checks the run's report and the fake's request counts, and prints the figures.

Memory is the child's peak resident set size (`resource.getrusage(RUSAGE_SELF).ru_maxrss`),
which includes the interpreter and every imported module, and is compared with the RSS
measured just before the run began, to show how much the run itself added.

The rate: the reconciliation paces itself (20 requests/s in test mode, 80 live, by default),
so 1,000 list calls cannot take less than 1000/rate seconds. An account with 100,000
subscriptions is a live account, so the benchmark runs in live mode (`STRIPE_TEST_MODE=false`,
its default 80/s) unless told otherwise; `--mode test` shows the test-mode pace (at 20/s the
1,000 list calls alone take 50 s, so 100,000 subscriptions cannot be done in 60 s there) and
`--rate 100000` the unthrottled CPU cost.

Environment: BENCH_PG_ADMIN_URL (default postgresql://postgres@127.0.0.1:5432/postgres, a
role that may create databases) and REDIS_URL (default redis://127.0.0.1:6379/0).
Targets (the issue): under 60 s, about N/100 list calls plus one call per repair, peak memory
under 300 MB.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import resource
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scratch import free_port, redis_prefix, throwaway_database
from subscription_list_fake import (
    PERIOD_END,
    PERIOD_START,
    Dataset,
    customer_id,
    gone_customer_id,
    gone_subscription_id,
    local_view,
    subscription_id,
)

ROOT = Path(__file__).resolve().parents[1]
FAKE = Path(__file__).with_name("subscription_list_fake.py")
TARGET_SECONDS = 60.0
TARGET_PEAK_MB = 300.0
PLAN_OF_PRICE = {"price_pro_test": "pro", "price_starter_test": "starter"}


def parse_options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--new", type=int, default=50)
    parser.add_argument("--drift", type=int, default=150)
    parser.add_argument("--gone", type=int, default=20)
    parser.add_argument("--mode", choices=("live", "test"), default="live", help="Stripe mode")
    parser.add_argument(
        "--rate", type=float, default=None, help="requests per second (default: the mode's)"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


@contextlib.contextmanager
def fake_stripe(data: Dataset) -> Iterator[str]:
    port = free_port()
    args = [sys.executable, str(FAKE), "--port", str(port), "--count", str(data.count)]
    args += ["--new", str(data.new), "--drift", str(data.drift), "--gone", str(data.gone)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # "listening on ..."
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def seed(database_url: str, data: Dataset) -> int:
    """The local copies, with COPY; how many subscriptions."""
    as_of = datetime.fromtimestamp(PERIOD_START, UTC)
    period_start, period_end = as_of, datetime.fromtimestamp(PERIOD_END, UTC)
    accounts, subscriptions = io.StringIO(), io.StringIO()
    rows = [
        (customer_id(i), subscription_id(i), *local_view(data, i))
        for i in range(data.new, data.count)
    ]
    rows += [
        (gone_customer_id(j), gone_subscription_id(j), "active", "price_pro_test", False)
        for j in range(data.gone)
    ]
    for number, (customer, sub, status, price, cancel) in enumerate(rows, start=1):
        plan = PLAN_OF_PRICE[price]
        accounts.write(f"{number}\t{customer}\tuser{number}@example.com\tuser_{number}\t{plan}\n")
        subscriptions.write(
            f"{number}\t{sub}\t{status}\t{price}\t{plan}\t{period_start.isoformat()}\t"
            f"{period_end.isoformat()}\t{'t' if cancel else 'f'}\t{as_of.isoformat()}\n"
        )
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY accounts (id, stripe_customer_id, email, user_id, plan) FROM STDIN"
        ) as copy:
            copy.write(accounts.getvalue())
        with cur.copy(
            "COPY subscriptions (account_id, stripe_subscription_id, status, price_id, plan,"
            " current_period_start, current_period_end, cancel_at_period_end, state_as_of)"
            " FROM STDIN"
        ) as copy:
            copy.write(subscriptions.getvalue())
        cur.execute(
            "SELECT setval(pg_get_serial_sequence('accounts', 'id'),"
            " (SELECT max(id) FROM accounts))"
        )
        conn.commit()
        conn.execute("ANALYZE accounts")
        conn.execute("ANALYZE subscriptions")
    return len(rows)


def child_env(
    database_url: str, redis_url: str, prefix: str, fake_url: str, mode: str, rate: float | None
) -> dict[str, str]:
    suffix = mode.upper()
    env = {
        **os.environ,
        "APP_ENV": "test",
        "DATABASE_URL": database_url.replace("postgresql://", "postgresql+psycopg://"),
        "REDIS_URL": redis_url,
        "BROKER_KEY_PREFIX": prefix,
        "STRIPE_TEST_MODE": str(mode == "test").lower(),
        f"STRIPE_SECRET_KEY_{suffix}": f"sk_{mode}_bench",
        "STRIPE_API_BASE": fake_url,
        # The fake's price ids, whichever mode reads them.
        f"STRIPE_PRICE_STARTER_{suffix}": "price_starter_test",
        f"STRIPE_PRICE_PRO_{suffix}": "price_pro_test",
        f"STRIPE_PRICE_TEAM_{suffix}": "price_team_test",
        "SENTRY_DSN": "",
        "PLANS_FILE": "",
    }
    if rate is not None:
        env[f"STRIPE_RATE_LIMIT_{suffix}"] = str(rate)
    return env


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def run_child() -> None:
    """In the child: one reconciliation as the Celery task does it; figures as JSON."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    from core.settings import get_settings
    from db.migrate import upgrade
    from tasks.reconciliation.run import reconcile
    from tasks.reconciliation.task import reconciliation_client

    upgrade(get_settings())
    client = reconciliation_client(get_settings())
    assert client is not None
    before = rss_kb()
    started = time.perf_counter()
    run_id, status = reconcile(client=client, trigger="cli")
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        json.dumps(
            {
                "run_id": run_id,
                "status": str(status),
                "seconds": elapsed,
                "rss_before_kb": before,
                "peak_rss_kb": peak,
            }
        )
    )


def run_report(database_url: str, run_id: int) -> dict[str, object]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT status, checked, drifted, fixed, error FROM reconciliation_runs WHERE id = %s",
            (run_id,),
        ).fetchone()
        kinds = dict(
            conn.execute(
                "SELECT kind, count(DISTINCT object_id) FROM reconciliation_items"
                " WHERE run_id = %s GROUP BY kind",
                (run_id,),
            ).fetchall()
        )
    assert row is not None
    status, checked, drifted, fixed, error = row
    return {
        "status": status,
        "checked": checked,
        "drifted": drifted,
        "fixed": fixed,
        "error": error,
        "items": kinds,
    }


def main() -> None:
    opts = parse_options()
    if opts.child:
        run_child()
        return
    data = Dataset(opts.count, opts.new, opts.drift, opts.gone)
    admin_url = os.environ.get(
        "BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    with (
        throwaway_database(admin_url, name="reconcile") as database_url,
        redis_prefix(redis_url, name="reconcile") as prefix,
        fake_stripe(data) as fake_url,
    ):
        env = child_env(database_url, redis_url, prefix, fake_url, opts.mode, opts.rate)
        subprocess.run(  # migrate first, so seeding has its tables
            [
                sys.executable,
                "-c",
                "from core.settings import get_settings;"
                "from db.migrate import upgrade; upgrade(get_settings())",
            ],
            env=env,
            cwd=ROOT,
            check=True,
        )
        local = seed(database_url, data)
        print(f"seeded {local:,} local subscriptions; Stripe (the fake) has {data.count:,}")
        out = subprocess.run(
            [sys.executable, __file__, "--child"],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        with urllib.request.urlopen(f"{fake_url}/_stats") as answer:
            calls = json.load(answer)
        report = run_report(database_url, figures["run_id"])
    show(opts, data, figures, calls, report)


def show(opts: argparse.Namespace, data: Dataset, figures: dict, calls: dict, report: dict) -> None:
    pages = math.ceil(data.count / 100)
    repairs = data.new + data.drift + data.gone
    peak_mb = figures["peak_rss_kb"] / 1024
    rate = opts.rate or (20 if opts.mode == "test" else 80)
    variable = f"STRIPE_RATE_LIMIT_{opts.mode.upper()}"
    print(f"mode: {opts.mode}; rate limit: {rate:g} requests/s ({variable})")
    print(
        f"run: {report['status']}, checked {report['checked']:,}, drifted {report['drifted']},"
        f" fixed {report['fixed']}; items by kind {report['items']}"
    )
    print(f"time: {figures['seconds']:.1f} s (target < {TARGET_SECONDS:.0f} s)")
    print(
        f"Stripe calls: {calls.get('list_subscriptions', 0):,} subscription list pages "
        f"(N/100 = {pages:,}), {calls.get('retrieve_subscription', 0)} subscription "
        f"retrieves and {calls.get('retrieve_customer', 0)} customer retrieves for "
        f"{repairs} repairs ({data.new} adoptions, {data.drift} drifted, {data.gone} gone), "
        f"{calls.get('list_events', 0)} event list"
    )
    print(
        f"memory: peak RSS {peak_mb:.0f} MB (ru_maxrss of the run's process; "
        f"{figures['rss_before_kb'] / 1024:.0f} MB before the run began); "
        f"target < {TARGET_PEAK_MB:.0f} MB"
    )
    expected = (data.count + data.gone, repairs, data.new + data.drift)
    ok = (
        report["status"] == "succeeded"
        and (report["checked"], report["drifted"], report["fixed"]) == expected
        and figures["seconds"] < TARGET_SECONDS
        and peak_mb < TARGET_PEAK_MB
        and calls.get("list_subscriptions") == pages
    )
    print("verdict:", "PASS" if ok else "FAIL")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
