"""A real SMTP server (aiosmtpd) whose answers are chosen by the recipient's address.

- `tempfail-<anything>@...`: the first DATA gets `451`, later ones are accepted;
- `reject-<anything>@...`: RCPT gets `550 5.1.1`;
- anything else is accepted.
The behaviour lives in the address, so tests stay independent while sharing one server.
"""

from __future__ import annotations

import email
import email.policy
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Received:
    mail_from: str
    recipients: list[str]
    message: EmailMessage


class RecordingHandler:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self._tempfailed: set[str] = set()
        self._lock = threading.Lock()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        if address.startswith("reject-"):
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._lock:
            for address in envelope.rcpt_tos:
                if address.startswith("tempfail-") and address not in self._tempfailed:
                    self._tempfailed.add(address)
                    return "451 4.3.0 Mail server temporarily unavailable"
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return f"250 2.0.0 Ok: queued as Q{len(self.received)}"

    def for_recipient(self, address: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if address in r.recipients]

    def wait_for(self, address: str, timeout: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.for_recipient(address)
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no message for {address} arrived")


def start_smtp_server(port: int, **server_kwargs: object) -> tuple[Controller, RecordingHandler]:
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **server_kwargs)
    controller.start()
    return controller, handler
