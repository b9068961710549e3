"""Deliver a rendered email over SMTP: plain, STARTTLS or SMTPS, with login when given.

SMTP_URL forms: `smtp://host:port` (plain), `smtp+starttls://user:pass@host:587`,
`smtps://user:pass@host:465` (TLS from the first byte).

The connection is kept open and reused by the next message of the same thread (a worker
process, or a thread of a thread pool): connecting, EHLO, TLS and login cost more than
sending a receipt does. A connection the server has dropped meanwhile fails at MAIL, before
anything of the message was sent, and is replaced once; after any other failure the
connection is closed, so the next message starts on a clean one.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
import threading
from dataclasses import dataclass
from email.charset import Charset
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import formatdate
from typing import Literal
from urllib.parse import unquote, urlsplit

from emails.rendering import RenderedEmail

Security = Literal["plain", "starttls", "ssl"]
# SMTP's line ends. Fold only past SMTP's hard limit: Python folds a bracketed subject
# ("[Acme] ...") before its first word, which mail clients then show with a leading space.
MESSAGE_POLICY = compat32.clone(linesep="\r\n", max_line_length=998)
# UTF-8 bodies as they are (8bit), not base64: what the SMTP policy sent before.
_UTF8_8BIT = Charset("utf-8")
_UTF8_8BIT.body_encoding = None
_SCHEMES: dict[str, tuple[Security, int]] = {
    "smtp": ("plain", 25),
    "smtp+starttls": ("starttls", 587),
    "smtps": ("ssl", 465),
}
TIMEOUT_SECONDS = 15
# The answers to MAIL that say the kept connection is done (a server's per-connection limit).
_CONNECTION_DONE_CODES = frozenset({421})


class DeliveryError(Exception):
    """The server (or the network) refused the message. `transient`: worth trying again."""

    def __init__(self, message: str, *, transient: bool, smtp_code: int | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.smtp_code = smtp_code


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int
    security: Security
    username: str | None
    password: str | None

    @classmethod
    def from_url(cls, url: str) -> SmtpConfig:
        parts = urlsplit(url)
        security, default_port = _SCHEMES[parts.scheme]
        return cls(
            host=parts.hostname or "localhost",
            port=parts.port or default_port,
            security=security,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


def build_message(
    rendered: RenderedEmail, *, sender: str, recipients: list[str], idempotency_key: str
) -> Message:
    """A multipart/alternative message: the text part first, the HTML part preferred.

    Built with the email package's MIME classes and its compat32 policy, which store what
    they are given, rather than with `EmailMessage`, whose policy parses every header it is
    given and again every header `set_content` writes: a fifth of the I/O pool's CPU on
    renewal day (py-spy, docs/performance.md), 1.5 to 1.9 ms a message against 0.5. What
    the server receives is the same message: encoded-word subjects, UTF-8 parts sent as
    8bit, CRLF line ends.
    """
    message = MIMEMultipart("alternative", policy=MESSAGE_POLICY)
    subject = rendered.subject
    message["Subject"] = subject if subject.isascii() else Header(subject, "utf-8").encode()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(usegmt=True)
    # Derived from the idempotency key, so even a resend after a crash reads as the same
    # message to the receiving side.
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    domain = sender.rpartition("@")[2] or "localhost"
    message["Message-ID"] = f"<{digest}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"
    for body, subtype in ((rendered.text, "plain"), (rendered.html, "html")):
        part = MIMEText(body, subtype, _UTF8_8BIT, policy=MESSAGE_POLICY)
        del part["MIME-Version"]  # the legacy classes repeat it on every part
        message.attach(part)
    return message


class _KeptConnection(threading.local):
    """This thread's open SMTP connection and the configuration it was opened with."""

    config: SmtpConfig | None = None
    smtp: smtplib.SMTP | None = None

    def take(self, config: SmtpConfig) -> smtplib.SMTP | None:
        if self.smtp is not None and self.config != config:
            self.close()
        return self.smtp

    def keep(self, config: SmtpConfig, smtp: smtplib.SMTP) -> None:
        self.config, self.smtp = config, smtp

    def close(self) -> None:
        smtp, self.smtp, self.config = self.smtp, None, None
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()


_kept = _KeptConnection()


def close_kept_connection() -> None:
    """Close this thread's kept connection, if any (tests; a worker's shutdown)."""
    _kept.close()


def deliver(config: SmtpConfig, message: Message, recipients: list[str]) -> str:
    """Send the message; the server's answer to DATA (`250 2.0.0 Ok: queued as ...`)."""
    try:
        return _deliver_on_kept_connection(config, message, recipients)
    except smtplib.SMTPRecipientsRefused as exc:
        answers = list(exc.recipients.values())
        codes = [code for code, _ in answers]
        raise DeliveryError(
            "every recipient refused: " + "; ".join(f"{c} {_text(m)}" for c, m in answers),
            transient=any(400 <= code < 500 for code in codes),
            smtp_code=codes[0] if codes else None,
        ) from None
    except smtplib.SMTPResponseException as exc:
        text = (
            exc.smtp_error.decode(errors="replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        raise DeliveryError(
            f"{exc.smtp_code} {text}", transient=400 <= exc.smtp_code < 500, smtp_code=exc.smtp_code
        ) from None
    except smtplib.SMTPNotSupportedError as exc:
        raise DeliveryError(f"server does not support it: {exc}", transient=False) from None
    except (smtplib.SMTPServerDisconnected, OSError) as exc:  # refused, reset, timed out
        raise DeliveryError(f"{type(exc).__name__}: {exc}", transient=True) from None


def _deliver_on_kept_connection(config: SmtpConfig, message: Message, recipients: list[str]) -> str:
    sender = str(message["From"])
    smtp = _kept.take(config)
    mail_answer: tuple[int, bytes] | None = None
    if smtp is not None:
        try:
            mail_answer = smtp.mail(sender)
        except (smtplib.SMTPServerDisconnected, OSError):
            mail_answer = None  # dropped while idle: nothing of this message was sent
        if mail_answer is None or mail_answer[0] in _CONNECTION_DONE_CODES:
            _kept.close()
            smtp, mail_answer = None, None
    if smtp is None:
        smtp = _connect(config)
        _kept.keep(config, smtp)
    try:
        if mail_answer is None:
            mail_answer = smtp.mail(sender)
        return _transact(smtp, mail_answer, message, recipients)
    except BaseException:
        _kept.close()
        raise


def _text(answer: bytes | str) -> str:
    return answer.decode(errors="replace") if isinstance(answer, bytes) else str(answer)


def _connect(config: SmtpConfig) -> smtplib.SMTP:
    context = ssl.create_default_context()
    if config.security == "ssl":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(
            config.host, config.port, timeout=TIMEOUT_SECONDS, context=context
        )
    else:
        smtp = smtplib.SMTP(config.host, config.port, timeout=TIMEOUT_SECONDS)
    try:
        smtp.ehlo()
        if config.security == "starttls":
            smtp.starttls(context=context)
            smtp.ehlo()
        if config.username:
            smtp.login(config.username, config.password or "")
    except BaseException:
        smtp.close()
        raise
    return smtp


def _transact(
    smtp: smtplib.SMTP,
    mail_answer: tuple[int, bytes],
    message: Message,
    recipients: list[str],
) -> str:
    """(MAIL, answered), RCPT for each recipient, DATA: smtplib's own steps, keeping DATA's
    answer."""
    sender = str(message["From"])
    code, answer = mail_answer
    if code != 250:
        raise smtplib.SMTPSenderRefused(code, answer, sender)
    refused = {}
    for recipient in recipients:
        code, answer = smtp.rcpt(recipient)
        if code not in (250, 251):
            refused[recipient] = (code, answer)
    if len(refused) == len(recipients):
        smtp.rset()
        raise smtplib.SMTPRecipientsRefused(refused)
    code, answer = smtp.data(message.as_bytes())
    if code != 250:
        raise smtplib.SMTPDataError(code, answer)
    response = f"{code} {answer.decode(errors='replace')}"
    if refused:
        response += f"; refused: {sorted(c for c, _ in refused.values())}"
    return response
