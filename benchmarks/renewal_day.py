"""Renewal day: N subscriptions renew at once; how fast the platform applies and emails them.

Command (from the repository root; PostgreSQL and Redis running locally, wrk installed):

    .venv/bin/python benchmarks/renewal_day.py [--customers 20000] [--worker-concurrency 2]
        [--connections 16] [--threads 2] [--slow-smtp-ms 200] [--slow-customers 2000]

One run, on a throwaway database and Redis key prefix:

1. The ceilings, measured in the same run: the verify-only endpoint
   (`benchmarks/ceiling_app.py`) under the same burst of signed events (at most 20,000), and
   the Celery no-op round trip (`benchmarks/noop_worker.py`: the platform's Celery app with a
   task that only counts itself, on a worker of the same concurrency).
2. Seeds N customers, each with an active `starter` subscription (COPY).
3. Starts the platform as in production: `billing api` and the worker pool(s) `billing up`
   runs (`--layout`), JSON logs, worker metrics on, Sentry on (its DSN points at a local sink
   that accepts envelopes), SMTP to a local aiosmtpd sink that counts what it receives.
4. Posts the renewal burst with wrk (`burst.lua`, every request once): per renewal
   `invoice.created`, `invoice.finalized`, `invoice.paid`, `invoice.payment_succeeded`,
   `customer.subscription.updated`, `charge.succeeded` (objects from `cli.sample_events`),
   interleaved across customers (windows of 100 customers, step by step), 5 % of events
   swapped with their customer's next event, 5 % sent a second time later.
5. Waits until every ledger grant and every receipt is done, then checks exactly-once: one
   `plan_credits` entry per renewal invoice, one `receipt:` email row per invoice, and one
   message per invoice received by the SMTP sink (its own count, by Message-ID).

With `--slow-smtp-ms`, the run is repeated (on `--slow-customers`) with an SMTP sink that
answers each message that much later: the event lag must stay within 1.5x of a normal run of
the same N (run first when `--slow-customers` differs from `--customers`: the lag grows with
N) while the email backlog drains behind it (queues that isolate).

Environment: BENCH_PG_ADMIN_URL (default postgresql://postgres@127.0.0.1:5432/postgres) and
REDIS_URL (default redis://127.0.0.1:6379/0).
Targets (issue 15): end to end >= 0.4 x the Celery no-op round trip; 20,000 renewals fully
applied and emailed in <= 10 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
import psycopg
import redis
from aiosmtpd.controller import Controller
from celery import Celery

from cli.sample_events import Step, Story, SubscriptionIds, event, subscription
from cli.sample_events.charges import charge
from cli.sample_events.invoices import invoice
from cli.sample_events.story import Payment
from core.webhook_signing import stripe_signature_header

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu import cpu_seconds, database_cpu_seconds, machine_cpu, profiler
from scratch import (
    free_port,
    libpq,
    pdf_server,
    redis_prefix,
    sentry_sink,
    throwaway_database,
)

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BURST_LUA = Path(__file__).with_name("burst.lua")
WEBHOOK_PATH = "/api/stripe/webhook"
STARTER, PRO = "price_starter_test", "price_pro_test"
DAY = 86_400
WINDOW = 100  # customers whose renewals interleave, step by step
DUPLICATE_SHARE = OUT_OF_ORDER_SHARE = 0.05
CEILING_EVENTS = 20_000
NOOP_TASKS = 3_000
TARGET_E2E_RATIO = 0.4
TARGET_SECONDS_20K = 600
LAG_ISOLATION = 1.5
PROGRESS_EVERY = 60  # seconds between progress lines while waiting
LAYOUTS = ("one-pool", "split")


@dataclass(frozen=True)
class Options:
    customers: int
    connections: int
    threads: int
    concurrency: int
    layout: str
    slow_smtp_ms: int
    slow_customers: int
    timeout: int
    pg_admin_url: str
    redis_url: str
    profile: Path | None
    pdf_latency_ms: int


def parse_options() -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="split",
        help="one-pool: one worker on every queue; split: what `billing up` runs "
        "(-Q webhooks, and -Q emails,maintenance)",
    )
    parser.add_argument("--slow-smtp-ms", type=int, default=0, help="then a slow-SMTP run")
    parser.add_argument("--slow-customers", type=int, default=2_000)
    parser.add_argument("--timeout", type=int, default=1800, help="seconds to wait for the end")
    parser.add_argument(
        "--profile",
        type=Path,
        help="py-spy each worker pool into FILE-<pool> (.txt: raw, else SVG)",
    )
    parser.add_argument(
        "--pdf-latency-ms",
        type=int,
        default=150,
        help="how long the stand-in for Stripe's file server takes to answer an invoice PDF",
    )
    args = parser.parse_args()
    return Options(
        customers=args.customers,
        connections=args.connections,
        threads=args.threads,
        concurrency=args.worker_concurrency,
        layout=args.layout,
        slow_smtp_ms=args.slow_smtp_ms,
        slow_customers=min(args.slow_customers, args.customers),
        timeout=args.timeout,
        pg_admin_url=os.environ.get(
            "BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        redis_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        profile=args.profile,
        pdf_latency_ms=args.pdf_latency_ms,
    )


# --- The renewal burst ---------------------------------------------------------------------


def ids_of(i: int) -> tuple[str, SubscriptionIds]:
    n = f"{i:08d}"
    return f"cus_rnw{n}", SubscriptionIds(
        subscription=f"sub_rnw{n}",
        item=f"si_rnw{n}",
        product="prod_rnw",
        latest_invoice=f"in_rnw{n}",
    )


def renewal(i: int, now: int, pdf_base: str) -> list[dict[str, object]]:
    """The six events Stripe sends for one renewal, in Stripe's order; the invoice's PDF
    link points at the benchmark's stand-in for Stripe's file server."""
    customer, ids = ids_of(i)
    story = Story.fixed(customer, now=now, starter_price=STARTER, pro_price=PRO)
    plan = story.starter
    kwargs = {"invoice_id": ids.latest_invoice, "billing_reason": "subscription_cycle"}
    pdf = {"invoice_pdf": f"{pdf_base}/invoice/{ids.latest_invoice}/pdf"}
    draft = {**invoice(story, ids, plan, paid=False, **kwargs), **pdf}
    paid = {**invoice(story, ids, plan, **kwargs), **pdf}
    payment = Payment("", f"pi_rnw{i:08d}", f"ch_rnw{i:08d}", plan.amount, "usd")
    steps = [
        (Step("invoice.created", {**draft, "status": "draft"}), now - 6),
        (Step("invoice.finalized", draft), now - 5),
        (Step("charge.succeeded", charge(story, payment)), now - 4),
        (Step("invoice.paid", paid), now - 3),
        (Step("invoice.payment_succeeded", paid), now - 3),
        (
            Step(
                "customer.subscription.updated",
                subscription(story, ids, plan),
                previous_attributes={"latest_invoice": f"in_rnwold{i:08d}"},
            ),
            now - 2,
        ),
    ]
    return [
        event(step, created=created, event_id=f"evt_rnw{i:08d}_{k}")
        for k, (step, created) in enumerate(steps)
    ]


def burst(
    customers: int, now: int, rng: random.Random, pdf_base: str
) -> tuple[list[bytes], Counter[str]]:
    """Every event body in posting order (duplicates included), and how many of each kind."""
    bodies: list[bytes] = []
    stats: Counter[str] = Counter()
    for start in range(0, customers, WINDOW):
        window = range(start, min(start + WINDOW, customers))
        stories = [renewal(i, now, pdf_base) for i in window]
        for story in stories:  # 5 %: an event swapped with its customer's next one
            for k in range(len(story) - 1):
                if rng.random() < OUT_OF_ORDER_SHARE:
                    story[k], story[k + 1] = story[k + 1], story[k]
                    stats["out of order"] += 1
        for step in range(len(stories[0])):
            for story in rng.sample(stories, len(stories)):
                bodies.append(orjson.dumps(story[step]))
    for position in range(len(bodies)):  # 5 %: sent again, a few hundred events later
        if rng.random() < DUPLICATE_SHARE:
            later = min(len(bodies), position + rng.randrange(100, 1000))
            bodies.insert(later, bodies[position])
            stats["duplicates"] += 1
    stats["events"] = len(bodies)
    return bodies, stats


def write_slices(directory: Path, bodies: list[bytes], slices: int, secret: str) -> None:
    """Round-robin over wrk's threads, so each thread's slice keeps the burst's order."""
    directory.mkdir(parents=True)
    files = [(directory / f"slice-{s}.req").open("wb") for s in range(slices)]
    try:
        for k, body in enumerate(bodies):
            head = (
                f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "User-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n"
                "Content-Type: application/json; charset=utf-8\r\n"
                f"Stripe-Signature: {stripe_signature_header(body, secret)}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            files[k % slices].write(b"%d\n%s%s" % (len(head) + len(body), head, body))
    finally:
        for f in files:
            f.close()


@dataclass(frozen=True)
class Posted:
    ok: int
    sent: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.sent / self.seconds


def post_burst(url: str, directory: Path, opts: Options) -> Posted:
    """wrk sends every request once; stopped (SIGINT) once every slice is answered."""
    argv = ["wrk", f"-t{opts.threads}", f"-c{opts.connections}", "-d3600s", "--timeout", "10s"]
    argv += ["-s", str(BURST_LUA), url, "--", str(directory)]
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    while len(list(directory.glob("done-*"))) < opts.threads:
        if proc.poll() is not None:
            raise SystemExit(f"wrk exited early: {proc.stdout.read() if proc.stdout else ''}")
        time.sleep(0.02)
    seconds = time.monotonic() - started
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    line = next((ln for ln in out.splitlines() if ln.startswith("WRK_RESULT ")), None)
    if line is None:
        raise SystemExit(f"wrk printed no result:\n{out}")
    r = json.loads(line.removeprefix("WRK_RESULT "))
    return Posted(r["ok"], r["sent"], seconds, r["p50_us"] / 1000, r["p99_us"] / 1000)


# --- Sinks: SMTP and Sentry ----------------------------------------------------------------


class CountingSmtpHandler:
    def __init__(self, delay_seconds: float) -> None:
        self.delay = delay_seconds
        self.message_ids: Counter[str] = Counter()
        self._lock = threading.Lock()

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        content: bytes = envelope.content  # type: ignore[attr-defined]
        head = content.split(b"\r\n\r\n", 1)[0]
        mid = next(
            (ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"message-id:")), b"?"
        )
        with self._lock:
            self.message_ids[mid.decode()] += 1
        return "250 2.0.0 Ok: counted"


@contextlib.contextmanager
def smtp_sink(delay_ms: int) -> Iterator[tuple[str, CountingSmtpHandler]]:
    handler = CountingSmtpHandler(delay_ms / 1000)
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{port}", handler
    finally:
        controller.stop()


# --- Processes ---------------------------------------------------------------------------


@contextlib.contextmanager
def process(argv: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT) -> Iterator[int]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for_log(log: Path, needle: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if log.exists() and needle in log.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise SystemExit(f"{log.name}: no {needle!r} within {seconds} s:\n{log.read_text()[-3000:]}")


def wait_for_http(base: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{base}/openapi.json", timeout=1),
        ):
            return
        time.sleep(0.2)
    raise SystemExit(f"{base} did not start:\n{log.read_text()[-3000:]}")


def worker_commands(layout: str, concurrency: int) -> list[tuple[str, list[str]]]:
    """The worker pools of `--layout`: one on every queue, or `billing up`'s split."""
    billing = str(BIN / "billing")
    if layout == "one-pool":
        return [("worker", [billing, "worker", "-c", str(concurrency), "-n", "all@%h"])]
    return [
        (
            "worker-webhooks",
            [billing, "worker", "-Q", "webhooks", "-c", str(concurrency), "-n", "webhooks@%h"],
        ),
        (
            "worker-emails",
            [
                billing,
                "worker",
                "-Q",
                "emails,maintenance",
                "-P",
                "threads",
                "-c",
                "8",
                "-n",
                "emails@%h",
            ],
        ),
    ]


# --- Database ------------------------------------------------------------------------------


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [str(BIN / "billing"), "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def seed(database_url: str, customers: int, now: int) -> None:
    """N accounts on `starter`, each with an active subscription in its last period."""
    accounts, subscriptions = io.StringIO(), io.StringIO()
    start = datetime.fromtimestamp(now - 30 * DAY, UTC).isoformat()
    end = datetime.fromtimestamp(now, UTC).isoformat()
    for i in range(customers):
        customer, ids = ids_of(i)
        n = i + 1
        accounts.write(f"{n}\t{customer}\tjenny.rosen+{i}@example.com\tuser_{n}\tstarter\n")
        subscriptions.write(
            f"{n}\t{ids.subscription}\tactive\t{STARTER}\tstarter\t{start}\t{end}\tf\t{start}\n"
        )
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        accounts_sql = "COPY accounts (id, stripe_customer_id, email, user_id, plan) FROM STDIN"
        with cur.copy(accounts_sql) as c:
            c.write(accounts.getvalue())
        with cur.copy(
            "COPY subscriptions (account_id, stripe_subscription_id, status, price_id, plan,"
            " current_period_start, current_period_end, cancel_at_period_end, state_as_of)"
            " FROM STDIN"
        ) as c:
            c.write(subscriptions.getvalue())
        cur.execute(
            "SELECT setval(pg_get_serial_sequence('accounts', 'id'),"
            " (SELECT max(id) FROM accounts))"
        )
        conn.commit()
        conn.execute("ANALYZE")


PENDING = "status IN ('received', 'queued', 'processing')"  # ix_webhook_events_pending's
# The first pending row by id: an ordered scan of the partial index, which stops at once.
PENDING_SQL = f"""
SELECT (SELECT id FROM webhook_events WHERE {PENDING} ORDER BY id LIMIT 1) IS NOT NULL,
       (SELECT id FROM email_log WHERE status = 'pending' ORDER BY id LIMIT 1) IS NOT NULL,
       EXISTS (SELECT FROM webhook_events WHERE status = 'failed'),
       EXISTS (SELECT FROM email_log WHERE status = 'failed')
"""
PROGRESS_SQL = f"""
SELECT (SELECT count(*) FROM credit_ledger WHERE kind = 'plan_credits'),
       (SELECT count(*) FROM email_log WHERE status = 'sent'),
       (SELECT count(*) FROM webhook_events WHERE {PENDING}),
       greatest((SELECT max(processed_at) FROM webhook_events),
                (SELECT max(sent_at) FROM email_log))
"""


EXACTLY_ONCE_SQL = """
SELECT (SELECT count(*) FROM credit_ledger WHERE kind = 'plan_credits'),
       (SELECT count(DISTINCT source_id) FROM credit_ledger WHERE kind = 'plan_credits'),
       (SELECT count(*) FROM email_log WHERE idempotency_key LIKE 'receipt:%%'),
       (SELECT count(*) FROM email_log WHERE idempotency_key LIKE 'receipt:%%' AND status = 'sent'),
       (SELECT max(sent_at) FROM email_log)
"""


def wait_until_done(database_url: str, customers: int, timeout: int, started: float) -> float:
    """Seconds from `started` (wall clock, this machine's) until every grant and receipt
    was done; fails on failures or timeout.

    The end is read from the rows themselves (the last event's `processed_at`, the last
    receipt's `sent_at`), so the poll only has to notice it: once a second, asking whether
    anything is still pending or has failed, along the partial indexes. The poll runs beside
    the platform under test on the same 2 cores: counting whole tables four times a second
    took up to 0.4 s of PostgreSQL each time at N = 20,000, and even an EXISTS on the
    pending statuses, left to the planner, walked every version of every row (68 ms).
    """
    deadline, next_report = time.monotonic() + timeout, time.monotonic() + PROGRESS_EVERY
    grants = sent = 0
    with psycopg.connect(database_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            time.sleep(1.0)
            pending_events, pending_emails, failed, failed_emails = conn.execute(
                PENDING_SQL
            ).fetchone()
            if failed or failed_emails:
                raise SystemExit("FAIL: failed events or emails")
            report = time.monotonic() >= next_report
            if not (pending_events or pending_emails) or report:
                grants, sent, pending, finished = conn.execute(PROGRESS_SQL).fetchone()
                if grants >= customers and sent >= customers and not pending:
                    return finished.timestamp() - started
            if report:  # a long run shows that it moves
                next_report += PROGRESS_EVERY
                print(
                    f"  {time.time() - started:,.0f} s: {grants:,} grants, {sent:,} receipts"
                    f" sent, {pending:,} events pending",
                    flush=True,
                )
    raise SystemExit(f"FAIL: not done in {timeout} s: {grants} grants, {sent} receipts sent")


# --- A run -------------------------------------------------------------------------------


@dataclass
class RunResult:
    label: str
    customers: int
    events: int
    posted: Posted
    ceiling: Posted | None
    noop_rate: float
    total_seconds: float
    lag_p50_ms: float
    lag_p99_ms: float
    worker_cpu_ms_per_event: float
    pool_cpu_ms_per_event: dict[str, float]
    api_cpu_ms_per_event: float
    database_cpu_ms_per_event: float
    machine_cpu_ms_per_event: float
    machine_busy_share: float
    counts: dict[str, int] = field(default_factory=dict)
    noop_range: tuple[float, float] = (0.0, 0.0)  # before and after the run


def platform_env(base: dict[str, str], *, smtp_url: str, dsn: str, secret: str) -> dict[str, str]:
    return {
        **base,
        # `test` only so that the invoices' PDFs may come from the benchmark's plain-http
        # stand-in for Stripe's file server (the one thing APP_ENV=test allows here that
        # `development` does not); every production setting the run needs is set below.
        "APP_ENV": "test",
        "INVOICE_PDF_ALLOWED_HOSTS": "127.0.0.1",
        "STRIPE_WEBHOOK_SECRET": secret,
        "STRIPE_TEST_MODE": "true",
        "STRIPE_PRICE_STARTER_TEST": STARTER,
        "STRIPE_PRICE_PRO_TEST": PRO,
        "SMTP_URL": smtp_url,
        "EMAIL_FROM": "billing@example.com",
        "SENTRY_DSN": dsn,
        "LOG_FORMAT": "json",
        "WORKER_METRICS_PORT": "0",
    }


def measure_ceiling(
    env: dict[str, str], bodies: list[bytes], workdir: Path, opts: Options
) -> Posted:
    directory = workdir / "ceiling"
    write_slices(directory, bodies[:CEILING_EVENTS], opts.threads, env["STRIPE_WEBHOOK_SECRET"])
    port = free_port()
    argv = [sys.executable, str(ROOT / "benchmarks" / "ceiling_app.py"), "--port", str(port)]
    log = workdir / "ceiling.log"
    with process(argv, env, log):
        wait_for_http(f"http://127.0.0.1:{port}", log)
        return post_burst(f"http://127.0.0.1:{port}{WEBHOOK_PATH}", directory, opts)


def measure_noop(env: dict[str, str], workdir: Path, opts: Options) -> float:
    """Tasks/s of a no-op task through a worker of the same concurrency (prefork)."""
    counter = env["BROKER_KEY_PREFIX"] + "noop-counter"
    noop_env = {**env, "BENCH_NOOP_COUNTER": counter, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "celery", "-A", "noop_worker", "worker", "-Q", "bench_noop"]
    argv += ["-c", str(opts.concurrency), "-n", "noop@%h", "--loglevel=INFO"]
    log = workdir / "noop.log"
    with process(argv, noop_env, log, cwd=ROOT / "benchmarks"):
        wait_for_log(log, "ready")
        app = Celery("bench-publisher", broker=opts.redis_url)
        app.conf.broker_transport_options = {"global_keyprefix": env["BROKER_KEY_PREFIX"]}
        client = redis.Redis.from_url(opts.redis_url)
        client.set(counter, 0)
        started = time.monotonic()
        with app.producer_or_acquire() as producer:
            for _ in range(NOOP_TASKS):
                app.send_task("bench.noop", queue="bench_noop", producer=producer)
        while int(client.get(counter) or 0) < NOOP_TASKS:
            time.sleep(0.01)
        return NOOP_TASKS / (time.monotonic() - started)


def run_platform(
    label: str,
    env: dict[str, str],
    customers: int,
    workdir: Path,
    opts: Options,
    smtp_ms: int,
    pdf_base: str,
) -> RunResult:
    rng = random.Random(15)
    now = int(time.time())
    bodies, stats = burst(customers, now, rng, pdf_base)
    directory = workdir / f"burst-{label}"
    write_slices(directory, bodies, opts.threads, env["STRIPE_WEBHOOK_SECRET"])
    database_url = libpq(env["DATABASE_URL"])
    seed(database_url, customers, now)
    with contextlib.ExitStack() as stack:
        smtp_url, smtp = stack.enter_context(smtp_sink(smtp_ms))
        dsn = stack.enter_context(sentry_sink())
        penv = platform_env(env, smtp_url=smtp_url, dsn=dsn, secret=env["STRIPE_WEBHOOK_SECRET"])
        penv["INVOICE_ARCHIVE_URL"] = f"file://{workdir / f'invoices-{label}'}"
        workers = []
        for name, argv in worker_commands(opts.layout, opts.concurrency):
            log = workdir / f"{label}-{name}.log"
            workers.append(stack.enter_context(process(argv, penv, log)))
            wait_for_log(log, "ready")
        port = free_port()
        api_log = workdir / f"{label}-api.log"
        api_argv = [str(BIN / "billing"), "api", "--host", "127.0.0.1", "--port", str(port)]
        api_pid = stack.enter_context(process(api_argv, penv, api_log))
        wait_for_http(f"http://127.0.0.1:{port}", api_log)
        if opts.profile and label == "normal":  # each pool into a file of its own
            for (name, _), pid in zip(
                worker_commands(opts.layout, opts.concurrency), workers, strict=True
            ):
                out = opts.profile.with_name(f"{opts.profile.stem}-{name}{opts.profile.suffix}")
                stack.enter_context(profiler(pid, out))
        cpu_before = [cpu_seconds(pid) for pid in workers]
        api_before = cpu_seconds(api_pid)
        database_before = database_cpu_seconds(database_url)
        machine_before = machine_cpu()
        started = time.time()
        posted = post_burst(f"http://127.0.0.1:{port}{WEBHOOK_PATH}", directory, opts)
        api_cpu = cpu_seconds(api_pid) - api_before
        total_seconds = wait_until_done(database_url, customers, opts.timeout, started)
        pool_cpu = [
            cpu_seconds(pid) - before for pid, before in zip(workers, cpu_before, strict=True)
        ]
        worker_cpu = sum(pool_cpu)
        database_cpu = database_cpu_seconds(database_url) - database_before
        machine_after = machine_cpu()
        machine_busy = machine_after[0] - machine_before[0]
        machine_all = machine_after[1] - machine_before[1]
        counts = exactly_once(database_url, smtp, customers)
        counts["invoice PDFs archived by then"] = archived_invoices(database_url)
    figures = lag_figures(database_url)
    return RunResult(
        label=label,
        customers=customers,
        events=stats["events"],
        posted=posted,
        ceiling=None,
        noop_rate=0.0,
        total_seconds=total_seconds,
        lag_p50_ms=figures[0],
        lag_p99_ms=figures[1],
        worker_cpu_ms_per_event=1000 * worker_cpu / stats["events"],
        pool_cpu_ms_per_event={
            name: 1000 * cpu / stats["events"]
            for (name, _), cpu in zip(
                worker_commands(opts.layout, opts.concurrency), pool_cpu, strict=True
            )
        },
        api_cpu_ms_per_event=1000 * api_cpu / stats["events"],
        database_cpu_ms_per_event=1000 * database_cpu / stats["events"],
        machine_cpu_ms_per_event=1000 * machine_busy / stats["events"],
        machine_busy_share=machine_busy / machine_all if machine_all else 0.0,
        counts={**counts, **{k: v for k, v in stats.items() if k != "events"}},
    )


def archived_invoices(database_url: str) -> int:
    """Invoices whose PDF is kept (the archive runs beside the events; not waited for)."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM invoice_archives").fetchone()
    assert row is not None
    return int(row[0])


def lag_figures(database_url: str) -> tuple[float, float]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY processed_at - received_at),"
            " percentile_cont(0.99) WITHIN GROUP (ORDER BY processed_at - received_at)"
            " FROM webhook_events WHERE status = 'processed'"
        ).fetchone()
    assert row is not None
    return row[0].total_seconds() * 1000, row[1].total_seconds() * 1000


def exactly_once(database_url: str, smtp: CountingSmtpHandler, customers: int) -> dict[str, int]:
    """Every renewal's grant, receipt row and delivered message exists exactly once."""
    with psycopg.connect(database_url) as conn:
        grants, granted_invoices, receipts, sent, _ = conn.execute(EXACTLY_ONCE_SQL).fetchone()
    delivered = sum(smtp.message_ids.values())
    counts = {
        "grants": grants,
        "invoices granted": granted_invoices,
        "receipt rows": receipts,
        "receipts sent": sent,
        "messages at the SMTP sink": delivered,
        "distinct Message-IDs at the sink": len(smtp.message_ids),
    }
    wrong = {name: n for name, n in counts.items() if n != customers}
    if wrong:
        raise SystemExit(f"FAIL: exactly-once broken, expected {customers} each: {wrong}")
    return counts


# --- Report --------------------------------------------------------------------------------


def report(runs: list[RunResult], opts: Options) -> None:
    normal = runs[0]
    ceiling, noop = normal.ceiling, normal.noop_rate
    assert ceiling is not None
    print(
        f"\nrenewal day: layout {opts.layout}, worker concurrency {opts.concurrency},"
        f" wrk {opts.threads} threads x {opts.connections} connections;"
        f" load average before the run {normal.counts.get('load', 0) / 100:.2f}"
    )
    rows = [
        (
            "ingest events/s (burst)",
            f"{normal.posted.rate:,.0f}",
            f"{ceiling.rate:,.0f} verify-only",
            normal.posted.rate / ceiling.rate,
        ),
        (
            "ingest p99 ms (burst)",
            f"{normal.posted.p99_ms:.1f}",
            f"{ceiling.p99_ms:.1f} verify-only",
            None,
        ),
        (
            "end to end events/s",
            f"{normal.events / normal.total_seconds:,.0f}",
            f"{noop:,.0f} no-op ({normal.noop_range[0]:,.0f}-{normal.noop_range[1]:,.0f})",
            normal.events / normal.total_seconds / noop,
        ),
        ("renewals applied + emailed", f"{normal.total_seconds:,.1f} s", "", None),
        (
            "event lag p50 / p99 ms",
            f"{normal.lag_p50_ms:,.0f} / {normal.lag_p99_ms:,.0f}",
            "",
            None,
        ),
        (
            "worker CPU ms per event",
            f"{normal.worker_cpu_ms_per_event:.2f}",
            f"{1000 * opts.concurrency / noop:.2f} no-op (wall x slots)",
            None,
        ),
        *(
            (f"  of which {name}", f"{ms:.2f}", "", None)
            for name, ms in normal.pool_cpu_ms_per_event.items()
        ),
        ("API CPU ms per event", f"{normal.api_cpu_ms_per_event:.2f}", "", None),
        ("PostgreSQL CPU ms per event", f"{normal.database_cpu_ms_per_event:.2f}", "", None),
        (
            "machine CPU ms per event",
            f"{normal.machine_cpu_ms_per_event:.2f}",
            f"all processes; {normal.machine_busy_share:.0%} busy",
            None,
        ),
    ]
    print(f"N = {normal.customers:,} renewals, {normal.events:,} events posted")
    print(f"{'figure':<30}{'platform':>18}  {'ceiling':<30}{'ratio':>7}")
    for name, value, beside, ratio in rows:
        print(f"{name:<30}{value:>18}  {beside:<30}{'' if ratio is None else f'{ratio:.3f}':>7}")
    for run in runs:
        print(
            f"exactly once ({run.label}, N = {run.customers:,}): "
            + ", ".join(f"{k} {v:,}" for k, v in run.counts.items() if k != "load")
        )
    if len(runs) > 1:
        slow, reference = runs[-1], runs[-2]
        ratio = slow.lag_p99_ms / reference.lag_p99_ms
        print(
            f"slow SMTP ({opts.slow_smtp_ms} ms a message, N = {slow.customers:,}): event lag"
            f" p50 / p99 {slow.lag_p50_ms:,.0f} / {slow.lag_p99_ms:,.0f} ms, {ratio:.2f}x the"
            f" p99 of a normal run of that N, {reference.lag_p99_ms:,.0f} ms"
            f" (target <= {LAG_ISOLATION}:"
            f" {'met' if ratio <= LAG_ISOLATION else 'MISSED'}); emails drained after"
            f" {slow.total_seconds:,.0f} s"
        )
    e2e = normal.events / normal.total_seconds / noop
    projected = normal.total_seconds * 20_000 / normal.customers
    took = "took" if normal.customers == 20_000 else "would take (linear)"
    in_time = "met" if projected <= TARGET_SECONDS_20K else "MISSED"
    print(
        f"targets: end to end {e2e:.2f} x no-op (>= {TARGET_E2E_RATIO}:"
        f" {'met' if e2e >= TARGET_E2E_RATIO else 'MISSED'}); 20,000 renewals"
        f" {took} {projected:,.0f} s (<= {TARGET_SECONDS_20K}: {in_time})"
    )


def warn_without_autovacuum(admin_url: str) -> None:
    """Say so when the server never analyzes tables (this project's CI machines turn
    autovacuum off). The platform's statements are prepared on each worker connection while
    the burst's tables are still empty; only a new ANALYZE replaces their plans, so without
    it a lookup planned as a sequential scan of an empty table scans the whole table for the
    rest of the run, and the cost per event grows with N. Production runs with autovacuum on
    (PostgreSQL's default)."""
    with psycopg.connect(admin_url) as conn:
        row = conn.execute("SHOW autovacuum").fetchone()
    if row and row[0] != "on":
        print(
            "warning: autovacuum is off on this server: no table is analyzed during the run,"
            " so plans made while the tables were empty are kept (figures grow with N and are"
            " not production's); turn it on for the run: ALTER SYSTEM SET autovacuum = on;"
            " SELECT pg_reload_conf();",
            flush=True,
        )


def main() -> None:
    opts = parse_options()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed")
    warn_without_autovacuum(opts.pg_admin_url)
    secret = "whsec_bench_" + secrets.token_hex(16)
    workdir = Path(tempfile.mkdtemp(prefix="bench-renewal-"))
    runs: list[RunResult] = []
    stack = contextlib.ExitStack()
    try:
        pdf_base = stack.enter_context(pdf_server(opts.pdf_latency_ms))
        plan = [("normal", opts.customers, 0)]
        if opts.slow_smtp_ms:
            if opts.slow_customers != opts.customers:
                # The lag grows with N: the slow run is compared with a normal run of its size.
                plan.append(("reference", opts.slow_customers, 0))
            plan.append(("slow-smtp", opts.slow_customers, opts.slow_smtp_ms))
        for label, customers, smtp_ms in plan:
            with (
                throwaway_database(opts.pg_admin_url, name="renewal") as url,
                redis_prefix(opts.redis_url, name="renewal") as prefix,
            ):
                env = {
                    **os.environ,
                    "STRIPE_WEBHOOK_SECRET": secret,
                    "DATABASE_URL": url.replace("postgresql://", "postgresql+psycopg://", 1),
                    "REDIS_URL": opts.redis_url,
                    "BROKER_KEY_PREFIX": prefix,
                    "SENTRY_DSN": "",
                }
                migrate(env)
                load = os.getloadavg()[0]
                print(f"{label}: N = {customers:,}, load average {load:.2f}", flush=True)
                ceiling = noop = None
                if label == "normal":
                    bodies, _ = burst(
                        min(customers, CEILING_EVENTS // 6 + 1),
                        int(time.time()),
                        random.Random(15),
                        pdf_base,
                    )
                    ceiling = measure_ceiling(env, bodies, workdir, opts)
                    print(f"  verify-only: {ceiling.rate:,.0f} events/s", flush=True)
                    noop = measure_noop(env, workdir, opts)
                    print(f"  Celery no-op: {noop:,.0f} tasks/s", flush=True)
                run = run_platform(label, env, customers, workdir, opts, smtp_ms, pdf_base)
                if noop is not None:
                    # Measured again after the run and averaged: on a shared machine the load
                    # can change a lot over a long run.
                    after = measure_noop(env, workdir, opts)
                    print(f"  Celery no-op after the run: {after:,.0f} tasks/s", flush=True)
                    run.noop_range = (min(noop, after), max(noop, after))
                    noop = (noop + after) / 2
                run.ceiling, run.noop_rate = ceiling, noop or 0.0
                run.counts["load"] = int(load * 100)
                print(f"  done in {run.total_seconds:,.1f} s", flush=True)
                runs.append(run)
        report(runs, opts)
    finally:
        stack.close()
        if os.environ.get("BENCH_KEEP"):
            print(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
