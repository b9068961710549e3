"""What a benchmark run owns and throws away: a free port, a database, a Redis key prefix."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def libpq(database_url: str) -> str:
    """A `DATABASE_URL` (SQLAlchemy's `postgresql+psycopg://`) as libpq and psycopg spell it."""
    return database_url.replace("postgresql+psycopg://", "postgresql://", 1)


@contextlib.contextmanager
def throwaway_database(admin_url: str, *, name: str) -> Iterator[str]:
    """A new, empty database for the run; its libpq URL. Dropped on the way out."""
    database = f"bench_{name}_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{database}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@contextlib.contextmanager
def redis_prefix(redis_url: str, *, name: str) -> Iterator[str]:
    """A key prefix of the run's own; every key under it is deleted on the way out."""
    prefix = f"bench-{name}-{os.getpid()}-{secrets.token_hex(3)}:"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


class _SentryHandler(BaseHTTPRequestHandler):
    received = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).received += 1
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_: object) -> None:
        pass


@contextlib.contextmanager
def sentry_sink() -> Iterator[str]:
    """A Sentry DSN whose envelopes land here (accepted, counted, dropped): the platform runs
    with Sentry on, as in production, without reaching out."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _SentryHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://bench@127.0.0.1:{server.server_address[1]}/1"
    finally:
        server.shutdown()


# A small but real PDF, about the size of Stripe's one-page invoice (30 KB).
_PDF = b"%PDF-1.4\n" + b"% renewal-day benchmark invoice\n" * 960 + b"%%EOF\n"


class _PdfHandler(BaseHTTPRequestHandler):
    latency_seconds = 0.0
    served = 0

    def do_GET(self) -> None:
        time.sleep(self.latency_seconds)
        type(self).served += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/pdf")
        self.send_header("Content-Length", str(len(_PDF)))
        self.end_headers()
        self.wfile.write(_PDF)

    def log_message(self, *_: object) -> None:
        pass


@contextlib.contextmanager
def pdf_server(latency_ms: int) -> Iterator[str]:
    """Stripe's file server for the invoices' `invoice_pdf` links: every path answers a PDF
    after `latency_ms` (the download a renewal's archive costs in production). The base URL;
    plain http, so the platform runs with APP_ENV=test (which only allows http PDF hosts)."""
    handler = type("PdfHandler", (_PdfHandler,), {"latency_seconds": latency_ms / 1000})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
