"""The local mail sink of `billing up`: an SMTP server that keeps every message as a file.

Each message becomes ./var/outbox/<time>-<n>.eml (open it in any mail program) and one line
in the terminal. Nothing is relayed anywhere.
"""

from __future__ import annotations

import email
import email.policy
import itertools
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from core.redaction import redact_email


class MailSinkError(Exception):
    """The sink cannot start; the message is one sentence."""


class OutboxHandler:
    def __init__(self, outbox: Path, announce: Callable[[str], None]) -> None:
        self.outbox = outbox
        self.announce = announce
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        with self._lock:
            number = next(self._numbers)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        path = self.outbox / f"{stamp}-{number:04d}.eml"
        path.write_bytes(content)
        message = email.message_from_bytes(content, policy=email.policy.default)
        # Addresses are shortened even here: the terminal may end up in a shared log.
        recipients = ", ".join(redact_email(str(a)) for a in envelope.rcpt_tos)
        self.announce(f"to {recipients}: {message.get('Subject', '(no subject)')} → {path}")
        return "250 2.0.0 Ok: kept in the outbox"


class MailSink:
    def __init__(self, outbox: Path, port: int, announce: Callable[[str], None]) -> None:
        outbox.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.outbox = outbox
        self._controller = Controller(
            OutboxHandler(outbox, announce), hostname="127.0.0.1", port=port
        )

    @property
    def smtp_url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        try:
            self._controller.start()
        except (OSError, RuntimeError) as exc:
            # Taken between choosing the port and binding it, or refused by the system.
            raise MailSinkError(f"the mail sink cannot listen on port {self.port}: {exc}") from None

    def stop(self) -> None:
        self._controller.stop()
