"""The SMTP transport on its own: SMTP_URL read right, TLS and login used when the URL asks,
against an SMTP server in this process. (Queueing and sending through `emails.send`, with the
email log in PostgreSQL, is tests/test_email_sending.py.)"""

from __future__ import annotations

import email
import email.policy
import subprocess
import uuid
from pathlib import Path

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from core.settings import get_settings
from emails.rendering import EmailRenderer, RenderedEmail
from emails.samples import SAMPLES
from emails.smtp import DeliveryError, SmtpConfig, build_message, deliver
from tests.support.processes import free_port
from tests.support.smtp import start_smtp_server


def address(kind: str = "user") -> str:
    return f"{kind}-{uuid.uuid4().hex[:10]}@example.com"


# --- transport security -------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def _authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"mailer",
        b"s3cret/pass",
    )
    return AuthResult(success=ok, handled=False)


def _message(to: str):
    rendered = EmailRenderer(get_settings()).render("credits_low", SAMPLES["credits_low"])
    return build_message(
        rendered, sender="billing@example.com", recipients=[to], idempotency_key=f"test:{to}"
    )


@pytest.mark.parametrize("scheme", ["smtp+starttls", "smtps"])
def test_tls_and_login_are_used_when_the_url_asks(certificate, monkeypatch, scheme):
    import ssl

    cert, key = certificate
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trust the test's own certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    port = free_port()
    # aiosmtpd cannot tell that an implicit-TLS session is encrypted; it is told not to ask.
    tls = (
        {"ssl_context": context, "auth_require_tls": False}
        if scheme == "smtps"
        else {"tls_context": context, "require_starttls": True}
    )
    controller, handler = start_smtp_server(
        port, authenticator=_authenticator, auth_required=True, **tls
    )
    try:
        to = address()
        config = SmtpConfig.from_url(f"{scheme}://mailer:s3cret%2Fpass@localhost:{port}")
        response = deliver(config, _message(to), [to])
        assert response.startswith("250")
        assert len(handler.for_recipient(to)) == 1

        wrong = SmtpConfig.from_url(f"{scheme}://mailer:wrong@localhost:{port}")
        with pytest.raises(DeliveryError) as refused:
            deliver(wrong, _message(to), [to])
        assert refused.value.transient is False
        assert refused.value.smtp_code == 535
    finally:
        controller.stop()


def test_smtp_urls_are_understood():
    assert SmtpConfig.from_url("smtp://mail.local:2525") == SmtpConfig(
        "mail.local", 2525, "plain", None, None
    )
    assert SmtpConfig.from_url("smtps://u%40x:p@smtp.example.com") == SmtpConfig(
        "smtp.example.com", 465, "ssl", "u@x", "p"
    )
    assert SmtpConfig.from_url("smtp+starttls://smtp.example.com").port == 587


# --- the kept connection ------------------------------------------------------------------


class _PeerRecorder:
    """Accepts every message and notes which client connection (its port) carried it."""

    def __init__(self) -> None:
        self.peers: list[object] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.peers.append(session.peer)
        return "250 2.0.0 Ok"


def _peer_server(port: int):
    from aiosmtpd.controller import Controller

    handler = _PeerRecorder()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    return controller, handler


def test_messages_in_a_row_share_one_connection():
    from emails.smtp import close_kept_connection

    port = free_port()
    controller, handler = _peer_server(port)
    try:
        config = SmtpConfig.from_url(f"smtp://127.0.0.1:{port}")
        for _ in range(3):
            to = address()
            assert deliver(config, _message(to), [to]).startswith("250")
        assert len(handler.peers) == 3
        assert len(set(handler.peers)) == 1
    finally:
        close_kept_connection()
        controller.stop()


def test_a_connection_the_server_dropped_is_replaced_and_the_message_still_sent():
    from emails.smtp import close_kept_connection

    port = free_port()
    controller, first = _peer_server(port)
    config = SmtpConfig.from_url(f"smtp://127.0.0.1:{port}")
    try:
        to = address()
        deliver(config, _message(to), [to])
        controller.stop()  # the kept connection is gone with the server
        controller, second = _peer_server(port)
        to = address()
        assert deliver(config, _message(to), [to]).startswith("250")
        assert len(first.peers) == 1
        assert len(second.peers) == 1
    finally:
        close_kept_connection()
        controller.stop()


def test_a_refused_message_leaves_no_half_used_connection_behind():
    from emails.smtp import close_kept_connection

    port = free_port()
    controller, handler = start_smtp_server(port)
    config = SmtpConfig.from_url(f"smtp://127.0.0.1:{port}")
    try:
        with pytest.raises(DeliveryError):
            deliver(config, _message(address("reject")), [address("reject")])
        to = address()
        assert deliver(config, _message(to), [to]).startswith("250")
        assert len(handler.for_recipient(to)) == 1
    finally:
        close_kept_connection()
        controller.stop()


def test_a_message_reads_back_as_it_was_rendered():
    rendered = RenderedEmail(
        subject="[Acme] Reçu — 2 000 crédits " + "x" * 120,
        text="Bonjour Jérôme,\nmerci.\n",
        html="<p>Bonjour Jérôme,</p>\n<p>merci.</p>\n",
    )
    raw = build_message(
        rendered, sender="billing@example.com", recipients=["a@example.com"], idempotency_key="k"
    ).as_bytes()
    message = email.message_from_bytes(raw, policy=email.policy.default)

    assert message["Subject"] == rendered.subject
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    parts = {part.get_content_type(): part for part in message.iter_parts()}
    assert parts["text/plain"].get_content() == rendered.text.replace("\n", "\r\n")
    assert parts["text/html"].get_content() == rendered.html.replace("\n", "\r\n")
    assert {part["Content-Transfer-Encoding"] for part in parts.values()} == {"8bit"}
