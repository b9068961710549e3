"""Fetching an invoice PDF from Stripe's link: only from allowed hosts, size-capped.

Stripe's `invoice_pdf` (`https://pay.stripe.com/invoice/.../pdf`) answers with a redirect to
`files.stripe.com`; redirects are followed by hand so that every hop's host is checked against
the allow list (a link to anywhere else is never requested: the link comes from a webhook
payload, and the worker must not be steered at internal addresses).

Three outcomes: the bytes; `DownloadRefused` (this link will never give a PDF we keep: another
host, too large, a 4xx, not a PDF), after which the platform renders its own; or
`DownloadUnavailable` (a 5xx, a timeout, a lost connection), which the task retries.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urljoin, urlsplit

import httpx

MAX_REDIRECTS = 5
PDF_MAGIC = b"%PDF-"


class DownloadRefused(Exception):
    """The link cannot give a PDF worth keeping; the message says why."""


class DownloadUnavailable(Exception):
    """A temporary failure (5xx, timeout, lost connection): worth trying again later."""


@dataclass(frozen=True, slots=True)
class DownloadPolicy:
    allowed_hosts: frozenset[str]
    schemes: tuple[str, ...]
    max_bytes: int
    timeout_seconds: float


def check_link(url: str, policy: DownloadPolicy) -> None:
    """DownloadRefused unless the link's scheme and host are allowed."""
    parts = urlsplit(url)
    if parts.scheme not in policy.schemes:
        raise DownloadRefused(f"scheme {parts.scheme or '(none)'} is not allowed")
    host = (parts.hostname or "").lower()
    if host not in policy.allowed_hosts:
        raise DownloadRefused(f"host {host or '(none)'} is not in INVOICE_PDF_ALLOWED_HOSTS")


@lru_cache(maxsize=1)
def _client() -> httpx.Client:
    """The process's client, shared by its threads: building one loads the CA bundle into a
    new SSL context, about 20 ms of CPU (on renewal day, more than the rest of an invoice's
    archive), and a kept client also keeps its connections to Stripe's file servers open."""
    return httpx.Client(follow_redirects=False, trust_env=False)


def download_pdf(url: str, policy: DownloadPolicy) -> bytes:
    """The PDF at `url` (following allowed redirects), or DownloadRefused/DownloadUnavailable."""
    check_link(url, policy)
    timeout = httpx.Timeout(policy.timeout_seconds)
    headers = {"Accept": "application/pdf"}
    try:
        for _ in range(MAX_REDIRECTS + 1):
            with _client().stream("GET", url, headers=headers, timeout=timeout) as answer:
                if answer.is_redirect:
                    url = urljoin(url, answer.headers.get("location", ""))
                    check_link(url, policy)
                    continue
                return _read_pdf(answer, policy.max_bytes)
    except httpx.TransportError as exc:  # timeouts, refused and lost connections
        raise DownloadUnavailable(f"{type(exc).__name__}: {exc}") from exc
    raise DownloadRefused(f"more than {MAX_REDIRECTS} redirects")


def _read_pdf(answer: httpx.Response, max_bytes: int) -> bytes:
    status = answer.status_code
    if status >= 500 or status == 429:
        raise DownloadUnavailable(f"HTTP {status}")
    if status != 200:
        # Stripe's links stop working some time after the invoice: a 404 stays a 404.
        raise DownloadRefused(f"HTTP {status}")
    declared = answer.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise DownloadRefused(f"{declared} bytes is over INVOICE_PDF_MAX_BYTES ({max_bytes})")
    body = bytearray()
    for chunk in answer.iter_bytes():
        body += chunk
        if len(body) > max_bytes:  # a server that sent no length, or the wrong one
            raise DownloadRefused(f"over INVOICE_PDF_MAX_BYTES ({max_bytes})")
    if not body.startswith(PDF_MAGIC):
        raise DownloadRefused("the answer is not a PDF")
    return bytes(body)
