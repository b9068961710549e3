"""Webhook ingest throughput: the platform against the least a webhook endpoint must do.

Command (from the repository root; PostgreSQL and Redis running locally, wrk installed):

    make bench

    .venv/bin/python benchmarks/ingest.py [--duration 20] [--connections 16] [--threads 2]
                                          [--events N] [--warmup 3] [--rounds 3] [--no-sentry]
                                          [--api-processes 1,2] [--profile FILE]

Two servers run on free ports, one after the other under load, in alternating rounds
(ceiling, platform, ceiling, platform, ...; each round starts both servers afresh, and the
platform on a new database):

* ceiling: `benchmarks/ceiling_app.py`, a FastAPI endpoint that checks the signature
  (stripe.WebhookSignature.verify_header: HMAC and the 300 s tolerance), parses the JSON with
  orjson and stores nothing;
* platform: `billing api --workers N`, once for each `--api-processes` count (1 and 2 by
  default), on a throwaway database (created, migrated, dropped after its round),
  storing every event in `webhook_events` and publishing to Redis under a `bench-...:` key
  prefix (deleted afterwards). No Celery worker runs, so only ingest is measured. It runs
  with production's observability on: Sentry (its DSN pointing at a local sink that
  accepts the envelopes; `--no-sentry` leaves it unset), JSON logs and the metrics
  counters.

Each side gets distinct signed `invoice.paid` events of about 4 KB (an invoice shaped like
Stripe's, fresh signature timestamps), pre-generated and replayed by wrk (`replay.lua`, one
slice of events per wrk thread, none sent twice). A short warm-up precedes each measured run.
After each platform run the stored rows are counted: every 200 must have its row. Each
measured run also reports CPU per event: the server's processes, the database's backends
and the whole machine (wrk, PostgreSQL and Redis share it with the server), so a ratio can
be read as work done rather than only as time.

On a small shared machine one noisy run can move a side by 10 % or more, so each round
reports its own ratio (platform over the ceiling measured just before it) and the verdict
uses the median ratio over the rounds, and the worst platform p99.

Environment: BENCH_PG_ADMIN_URL (default postgresql://postgres@127.0.0.1:5432/postgres, a
role that may create databases) and REDIS_URL (default redis://127.0.0.1:6379/0).
Target (issue 15): platform events/s >= 0.8 x ceiling, platform p99 <= 15 ms, Sentry on.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import psycopg

from cli.sample_events import Step, event
from core.webhook_signing import stripe_signature_header

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu import cpu_seconds, database_cpu_seconds, machine_cpu, profiler
from scratch import free_port, libpq, redis_prefix, sentry_sink, throwaway_database

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LUA_SCRIPT = Path(__file__).with_name("replay.lua")
WEBHOOK_PATH = "/api/stripe/webhook"
WARMUP_RATE_ALLOWANCE = 10_000  # events/s, to size the warm-up's events
HEADROOM = 2.0  # measured-run events = warm-up rate x duration x this
VARIANTS = 64
SERIAL_MARK = "@" * 20  # in the templates; each event's serial (tag + number) replaces it
PHASE_SERIALS = 10**9  # each run (round x warm-up/measured) takes serials from its own block
RUN_TAG = secrets.token_hex(4)  # with a serial number, makes the event ids of this run
RUNS_PER_ROUND = 16  # serial blocks per round: the ceiling's, and one per process count
TARGET_RATIO = 0.8
TARGET_P99_MS = 15.0


@dataclass(frozen=True)
class Options:
    duration: int
    warmup: int
    connections: int
    threads: int
    events: int
    rounds: int
    sentry: bool
    api_processes: tuple[int, ...]
    pg_admin_url: str
    redis_url: str
    profile: Path | None


@dataclass(frozen=True)
class WrkResult:
    responses: int
    duration_us: int
    non_2xx: int
    socket_errors: int
    timeouts: int
    sent: int
    wraps: int
    p50_us: int
    p99_us: int
    # CPU per response in the measured run: the server's processes, the database's
    # backends, the whole machine (wrk included). Filled in after wrk returns.
    server_cpu_us: float = 0.0
    database_cpu_us: float = 0.0
    machine_cpu_us: float = 0.0
    # Stored rows per transaction committed in the database over the server's life (warm-up
    # included): the writers' batch size, which sets PostgreSQL's cost per event.
    rows_per_commit: float = 0.0

    @property
    def rate(self) -> float:
        return self.responses / (self.duration_us / 1e6)

    @property
    def ok(self) -> int:
        return self.responses - self.non_2xx


def parse_options() -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=20, help="measured seconds per side")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up seconds per side")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--events",
        type=int,
        default=0,
        help="events per measured run (default: warm-up rate x duration x 2)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating ceiling/platform rounds")
    parser.add_argument(
        "--no-sentry", action="store_true", help="run the platform without a Sentry DSN"
    )
    parser.add_argument(
        "--api-processes",
        default="1,2",
        help="the platform's process counts measured each round (billing api --workers N)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="py-spy the platform's measured runs into FILE-<processes>-<round>"
        " (.txt: raw, else SVG)",
    )
    args = parser.parse_args()
    api_processes = tuple(int(n) for n in args.api_processes.split(","))
    if min(args.duration, args.warmup, args.connections, args.threads, args.rounds) < 1:
        parser.error(
            "--duration, --warmup, --connections, --threads and --rounds must be at least 1"
        )
    return Options(
        duration=args.duration,
        warmup=args.warmup,
        connections=args.connections,
        threads=args.threads,
        events=args.events,
        rounds=args.rounds,
        sentry=not args.no_sentry,
        api_processes=api_processes,
        pg_admin_url=os.environ.get(
            "BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        redis_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        profile=args.profile,
    )


# --- Events -------------------------------------------------------------------------------


def _line_item(ids: dict[str, str], amount: int, now: int) -> dict[str, object]:
    price = {
        "id": "price_1PgafmLkdIwHu7ixRwHqGbWv",
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "created": 1719400000,
        "currency": "usd",
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": "pro_monthly",
        "metadata": {"plan": "pro", "credits": "5000"},
        "nickname": "Pro (monthly)",
        "product": "prod_QXfVwK4YbVpQzR",
        "recurring": {
            "aggregate_usage": None,
            "interval": "month",
            "interval_count": 1,
            "meter": None,
            "trial_period_days": None,
            "usage_type": "licensed",
        },
        "tax_behavior": "exclusive",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring",
        "unit_amount": amount,
        "unit_amount_decimal": str(amount),
    }
    return {
        "id": ids["line"],
        "object": "line_item",
        "amount": amount,
        "amount_excluding_tax": amount,
        "currency": "usd",
        "description": f"1 \u00d7 Pro (at ${amount / 100:.2f} / month)",
        "discount_amounts": [],
        "discountable": True,
        "discounts": [],
        "invoice": ids["invoice"],
        "invoice_item": None,
        "livemode": False,
        "metadata": {},
        "period": {"end": now + 30 * 86400, "start": now},
        "plan": None,
        "price": price,
        "proration": False,
        "proration_details": {"credited_items": None},
        "quantity": 1,
        "subscription": ids["subscription"],
        "subscription_item": ids["subscription_item"],
        "tax_amounts": [],
        "tax_rates": [],
        "type": "subscription",
        "unit_amount_excluding_tax": str(amount),
    }


# The fields of a Stripe invoice that are empty for a plain subscription renewal.
_INVOICE_DEFAULTS: dict[str, object] = {
    "account_tax_ids": None,
    "amount_shipping": 0,
    "application": None,
    "application_fee_amount": None,
    "custom_fields": None,
    "customer_phone": None,
    "customer_shipping": None,
    "customer_tax_ids": [],
    "default_source": None,
    "default_tax_rates": [],
    "description": None,
    "discount": None,
    "discounts": [],
    "due_date": None,
    "ending_balance": 0,
    "footer": None,
    "from_invoice": None,
    "last_finalization_error": None,
    "latest_revision": None,
    "next_payment_attempt": None,
    "on_behalf_of": None,
    "post_payment_credit_notes_amount": 0,
    "pre_payment_credit_notes_amount": 0,
    "quote": None,
    "receipt_number": None,
    "rendering": {"amount_tax_display": None, "pdf": {"page_size": "letter"}},
    "rendering_options": None,
    "shipping_cost": None,
    "shipping_details": None,
    "starting_balance": 0,
    "statement_descriptor": None,
    "test_clock": None,
    "threshold_reason": None,
    "transfer_data": None,
}


def _invoice(ids: dict[str, str], i: int, now: int) -> dict[str, object]:
    amount = 4900 + (i % 7) * 100
    return {
        "id": ids["invoice"],
        "object": "invoice",
        "account_country": "US",
        "account_name": "Example Billing Inc.",
        "amount_due": amount,
        "amount_paid": amount,
        "amount_remaining": 0,
        "attempt_count": 1,
        "attempted": True,
        "auto_advance": False,
        "automatic_tax": {"enabled": False, "liability": None, "status": None},
        "billing_reason": "subscription_cycle",
        "charge": ids["charge"],
        "collection_method": "charge_automatically",
        "created": now - 3600,
        "currency": "usd",
        "customer": ids["customer"],
        "customer_address": {
            "city": "Springfield",
            "country": "US",
            "line1": f"{100 + i % 900} Main Street",
            "line2": None,
            "postal_code": "62701",
            "state": "IL",
        },
        "customer_email": f"customer{i}@example.com",
        "customer_name": f"Customer {i}",
        "customer_tax_exempt": "none",
        "effective_at": now - 3500,
        "default_payment_method": None,
        "hosted_invoice_url": f"https://invoice.stripe.com/i/acct_1Pga/test_{ids['invoice']}",
        "invoice_pdf": f"https://pay.stripe.com/invoice/acct_1Pga/test_{ids['invoice']}/pdf",
        "issuer": {"type": "self"},
        "lines": {
            "object": "list",
            "data": [_line_item(ids, amount, now - 3600)],
            "has_more": False,
            "total_count": 1,
            "url": f"/v1/invoices/{ids['invoice']}/lines",
        },
        "livemode": False,
        "metadata": {"user_id": str(10_000 + i)},
        "number": f"A1B2C3D4-{i:06d}",
        "paid": True,
        "paid_out_of_band": False,
        "payment_intent": ids["payment_intent"],
        "payment_settings": {
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        "period_end": now - 3600,
        "period_start": now - 3600 - 30 * 86400,
        "status": "paid",
        "status_transitions": {
            "finalized_at": now - 3500,
            "marked_uncollectible_at": None,
            "paid_at": now - 60,
            "voided_at": None,
        },
        "subscription": ids["subscription"],
        "subscription_details": {"metadata": {"user_id": str(10_000 + i)}},
        "subtotal": amount,
        "subtotal_excluding_tax": amount,
        "tax": None,
        "total": amount,
        "total_discount_amounts": [],
        "total_excluding_tax": amount,
        "total_tax_amounts": [],
        "webhooks_delivered_at": None,
        **_INVOICE_DEFAULTS,
    }


def invoice_paid_event(serial: str, variant: int, now: int) -> bytes:
    """One `invoice.paid` event of about 4 KB (API 2024-06-20, an older shape than
    `cli.sample_events` builds); every Stripe id in it ends with `serial`."""
    prefixes = ("invoice", "in"), ("charge", "ch"), ("customer", "cus"), ("line", "il")
    prefixes += ("subscription", "sub"), ("subscription_item", "si"), ("payment_intent", "pi")
    ids = {name: f"{prefix}_{serial}" for name, prefix in prefixes}
    step = Step("invoice.paid", _invoice(ids, variant, now))
    return orjson.dumps(
        event(step, created=now, api_version="2024-06-20", event_id=f"evt_{serial}")
    )


def event_bodies(first: int, count: int) -> Iterator[bytes]:
    """`count` distinct events: a few dozen invoice variants, each id made unique per event.

    Building one dict per event would make generation, not the servers, the slow part, so
    the variants are rendered once with a placeholder serial that each event replaces.
    """
    now = int(time.time())
    templates = [invoice_paid_event(SERIAL_MARK, v, now) for v in range(VARIANTS)]
    for i in range(first, first + count):
        serial = b"%s%012d" % (RUN_TAG.encode(), i)
        yield templates[i % VARIANTS].replace(SERIAL_MARK.encode(), serial)


def raw_request(body: bytes, secret: str) -> bytes:
    head = (
        f"POST {WEBHOOK_PATH} HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\n"
        "User-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Stripe-Signature: {stripe_signature_header(body, secret)}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def write_requests(directory: Path, first: int, count: int, slices: int, secret: str) -> float:
    """Events first..first+count-1, signed, one file per wrk thread; the mean body size."""
    directory.mkdir(parents=True)
    total, per_slice = 0, -(-count // slices)
    for s in range(slices):
        start = first + s * per_slice
        with (directory / f"slice-{s}.req").open("wb") as out:
            for body in event_bodies(start, min(per_slice, first + count - start)):
                total += len(body)
                request = raw_request(body, secret)
                out.write(b"%d\n%s" % (len(request), request))
    return total / count


# --- Servers, database, broker ------------------------------------------------------------


@contextlib.contextmanager
def server(
    argv: list[str], env: dict[str, str], port: int, log_path: Path
) -> Iterator[tuple[str, int]]:
    """Start a server process, wait until it answers; its base URL and process id. Stopped
    on the way out."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(proc, base, log_path)
        yield base, proc.pid
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_until_up(proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
    # The first /openapi.json builds the schema: seconds on a loaded machine.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/openapi.json", timeout=10) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server at {base} did not start:\n{log.read_text()[-3000:]}")


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [str(BIN / "billing"), "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def committed_transactions(database_url: str) -> int:
    """Transactions committed in the database so far. Backends report theirs as they exit,
    so this waits (a few seconds at most) for the last server's connections to end."""
    with psycopg.connect(libpq(database_url), autocommit=True) as conn:
        deadline = time.monotonic() + 5
        while (
            time.monotonic() < deadline
            and conn.execute(
                "SELECT 1 FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid() LIMIT 1"
            ).fetchone()
        ):
            time.sleep(0.05)
        row = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


def count_rows(database_url: str) -> int:
    with psycopg.connect(libpq(database_url)) as conn:
        row = conn.execute("SELECT count(*) FROM webhook_events").fetchone()
    return int(row[0]) if row else 0


# --- Load ---------------------------------------------------------------------------------


def run_wrk(url: str, requests_dir: Path, seconds: int, opts: Options) -> WrkResult:
    argv = [
        "wrk",
        f"-t{opts.threads}",
        f"-c{opts.connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "-s",
        str(LUA_SCRIPT),
        url,
        "--",
        str(requests_dir),
    ]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    line = next((ln for ln in out.splitlines() if ln.startswith("WRK_RESULT ")), None)
    if line is None:
        raise SystemExit(f"wrk printed no result:\n{out}")
    r = json.loads(line.removeprefix("WRK_RESULT "))
    return WrkResult(
        responses=r["responses"],
        duration_us=r["duration_us"],
        non_2xx=r["non_2xx"],
        socket_errors=r["connect_errors"] + r["read_errors"] + r["write_errors"],
        timeouts=r["timeouts"],
        sent=r["sent"],
        wraps=r["wraps"],
        p50_us=r["p50_us"],
        p99_us=r["p99_us"],
    )


@dataclass(frozen=True)
class Side:
    name: str
    base: str  # the server's URL
    pid: int  # the server's process (uvicorn's supervisor when --workers > 1)
    env: dict[str, str]  # the server's environment
    workdir: Path
    round: int  # from 0
    block: int  # each run's events come from blocks of serials of its own: never seen before
    profile: Path | None = None

    @property
    def secret(self) -> str:
        return self.env["STRIPE_WEBHOOK_SECRET"]

    @property
    def database_url(self) -> str:
        """The database whose backends' CPU is counted."""
        return libpq(self.env["DATABASE_URL"])


def load(side: Side, opts: Options) -> list[WrkResult]:
    """A warm-up run, then the measured run on as many new events as it can use; both."""
    warmup_events = opts.warmup * WARMUP_RATE_ALLOWANCE
    first = 2 * side.block * PHASE_SERIALS
    warmup = drive(side, "warm-up", first, warmup_events, opts.warmup, opts)
    events = opts.events or int(warmup.rate * opts.duration * HEADROOM) + 1000
    with contextlib.ExitStack() as stack:
        if side.profile is not None:
            stack.enter_context(profiler(side.pid, side.profile))
        before = cpu_seconds(side.pid), database_cpu_seconds(side.database_url), machine_cpu()[0]
        measured = drive(side, "measured", first + PHASE_SERIALS, events, opts.duration, opts)
        after = cpu_seconds(side.pid), database_cpu_seconds(side.database_url), machine_cpu()[0]
    us = [1e6 * (a - b) / max(measured.responses, 1) for a, b in zip(after, before, strict=True)]
    measured = dataclasses.replace(
        measured, server_cpu_us=us[0], database_cpu_us=us[1], machine_cpu_us=us[2]
    )
    return [warmup, measured]


def drive(
    side: Side, label: str, first: int, events: int, seconds: int, opts: Options
) -> WrkResult:
    """One wrk run on events first..first+events-1, generated just before (fresh timestamps)."""
    directory = side.workdir / f"{side.name}-{side.round}-{label}"
    size = write_requests(directory, first, events, opts.threads, side.secret)
    print(
        f"  round {side.round + 1} {side.name} {label}: {events:,} events of {size:,.0f} B,"
        f" {seconds} s",
        flush=True,
    )
    result = run_wrk(side.base + WEBHOOK_PATH, directory, seconds, opts)
    shutil.rmtree(directory)
    if result.wraps:
        print(f"  warning: the {side.name} {label} run sent events twice; raise --events")
    return result


# --- The run ------------------------------------------------------------------------------


def bench_env(
    secret: str, database_url: str, prefix: str, redis_url: str, sentry_dsn: str
) -> dict[str, str]:
    return {
        **os.environ,
        "STRIPE_WEBHOOK_SECRET": secret,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "BROKER_KEY_PREFIX": prefix,
        "SENTRY_DSN": sentry_dsn,
        "LOG_FORMAT": "json",
    }


def measure_ceiling(env: dict[str, str], workdir: Path, opts: Options, round_no: int) -> WrkResult:
    port = free_port()
    # The same uvicorn settings as `billing api` (see ceiling_app.main).
    argv = [sys.executable, str(ROOT / "benchmarks" / "ceiling_app.py"), "--port", str(port)]
    with server(argv, env, port, workdir / f"ceiling-{round_no}.log") as (base, pid):
        side = Side("ceiling", base, pid, env, workdir, round_no, round_no * RUNS_PER_ROUND)
        return load(side, opts)[-1]


def measure_platform(
    env: dict[str, str], workdir: Path, opts: Options, round_no: int, processes: int
) -> WrkResult:
    port = free_port()
    argv = [str(BIN / "billing"), "api", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--workers", str(processes)]
    rows_before = count_rows(env["DATABASE_URL"])
    commits_before = committed_transactions(env["DATABASE_URL"])
    log_path = workdir / f"platform-{round_no}-{processes}.log"
    with server(argv, env, port, log_path) as (base, pid):
        block = round_no * RUNS_PER_ROUND + processes
        profile = opts.profile and opts.profile.with_name(
            f"{opts.profile.stem}-{processes}-{round_no + 1}{opts.profile.suffix}"
        )
        side = Side(f"platform-{processes}", base, pid, env, workdir, round_no, block, profile)
        results = load(side, opts)
        time.sleep(1)  # let requests in flight when wrk stopped finish
    rows = count_rows(env["DATABASE_URL"]) - rows_before
    check_nothing_lost(results, rows)
    commits = committed_transactions(env["DATABASE_URL"]) - commits_before
    return dataclasses.replace(results[-1], rows_per_commit=rows / max(commits, 1))


def check_nothing_lost(results: list[WrkResult], rows: int) -> None:
    """Every 200 has its row; the rows beyond are requests wrk left in flight as it stopped."""
    ok = sum(r.ok for r in results)
    in_flight = sum(r.sent - r.responses for r in results)
    print(
        f"  stored rows {rows:,} = 200 responses {ok:,} + {rows - ok} in flight at wrk's stop"
        f" (sent {sum(r.sent for r in results):,})"
    )
    if rows < ok or rows > ok + in_flight:
        raise SystemExit(f"FAIL: {rows} rows for {ok} acknowledged events")


def report(rounds: list[tuple[WrkResult, dict[int, WrkResult]]], opts: Options) -> None:
    print(
        f"\n{opts.connections} connections, {opts.threads} wrk threads, {opts.duration} s"
        f" measured after {opts.warmup} s of warm-up, per side and round; platform with"
        f" Sentry {'on' if opts.sentry else 'OFF'}; load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"{'round':<7}{'side':<13}{'events/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}"
        f"{'errors':>8}{'ratio':>8}   CPU us/event: server  database  machine  rows/commit"
    )
    ratios: dict[int, list[float]] = {n: [] for n in opts.api_processes}
    for number, (ceiling, platforms) in enumerate(rounds, start=1):
        sides = [("ceiling", ceiling, None)]
        for processes, result in platforms.items():
            ratios[processes].append(result.rate / ceiling.rate)
            sides.append((f"platform-{processes}", result, ratios[processes][-1]))
        for name, r, ratio in sides:
            errors = r.socket_errors + r.timeouts
            shown = " " * 8 if ratio is None else f"{ratio:>8.2f}"
            print(
                f"{number:<7}{name:<13}{r.rate:>10,.0f}{r.p50_us / 1000:>9.2f}"
                f"{r.p99_us / 1000:>9.2f}{r.non_2xx:>9}{errors:>8}{shown}"
                f"{r.server_cpu_us:>24,.0f}{r.database_cpu_us:>10,.0f}{r.machine_cpu_us:>9,.0f}"
                + (f"{r.rows_per_commit:>13.1f}" if r.rows_per_commit else "")
            )
    for processes in opts.api_processes:
        ratio = statistics.median(ratios[processes])
        rates = [platforms[processes].rate for _, platforms in rounds]
        p99_ms = max(platforms[processes].p99_us for _, platforms in rounds) / 1000
        print(
            f"{processes} API process(es): median {statistics.median(rates):,.0f} events/s, "
            f"ratio platform/ceiling {ratio:.2f} (target >= {TARGET_RATIO}: "
            f"{'met' if ratio >= TARGET_RATIO else 'MISSED'}); worst p99 {p99_ms:.1f} ms "
            f"(target <= {TARGET_P99_MS:.0f}: {'met' if p99_ms <= TARGET_P99_MS else 'MISSED'})"
        )


def run_round(
    secret: str, workdir: Path, opts: Options, round_no: int
) -> tuple[WrkResult, dict[int, WrkResult]]:
    """The ceiling, then the platform at each process count, on a database of the round's own.

    Every round starts from the same state, as a single run did: rounds sharing a database
    would inherit the earlier rounds' rows and WAL (a 20 s platform run writes some 300 MB of
    it; with the default max_wal_size a checkpoint starts at about 540 MB), so later rounds
    met a WAL-triggered checkpoint that the first never saw, and no longer measured the same
    thing. (CREATE DATABASE starts every round with a checkpoint of its own.) Within a round
    the process counts share the database, each run on events of its own.
    """
    with (
        throwaway_database(opts.pg_admin_url, name="ingest") as libpq_url,
        redis_prefix(opts.redis_url, name="ingest") as prefix,
        sentry_sink() if opts.sentry else contextlib.nullcontext("") as dsn,
    ):
        database_url = libpq_url.replace("postgresql://", "postgresql+psycopg://", 1)
        env = bench_env(secret, database_url, prefix, opts.redis_url, dsn)
        migrate(env)
        ceiling = measure_ceiling(env, workdir, opts, round_no)
        platforms = {
            processes: measure_platform(env, workdir, opts, round_no, processes)
            for processes in opts.api_processes
        }
        return ceiling, platforms


def main() -> None:
    opts = parse_options()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed")
    secret = "whsec_bench_" + secrets.token_hex(16)
    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        rounds = [run_round(secret, workdir, opts, round_no) for round_no in range(opts.rounds)]
        report(rounds, opts)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
