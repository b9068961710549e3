"""A real local HTTP server that plays Stripe's PDF host: each path answers a script of
responses in turn (the last one repeats), and every request is counted.

Run on 127.0.0.1, which the tests' `INVOICE_PDF_ALLOWED_HOSTS` allows (tests/conftest.py);
`localhost` names the same server but is not allowed, so a link or redirect to it is a
download refused by host.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # Send no Content-Length and write the body in chunks: a server that does not say.
    undeclared_length: bool = False
    # Seconds before answering: a file server at internet distance.
    delay: float = 0.0


def pdf_bytes(label: str, size: int = 0) -> bytes:
    """Bytes that start like a PDF, padded to `size`."""
    content = f"%PDF-1.7\n% {label}\n".encode()
    return content + b"0" * max(0, size - len(content))


class PdfServer:
    def __init__(self) -> None:
        self.scripts: dict[str, list[Answer]] = {}
        self.hits: collections.Counter[str] = collections.Counter()
        # The most requests it was answering at one moment.
        self.most_at_once = 0
        self._at_once = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                with server._lock:
                    server.hits[self.path] += 1
                    script = server.scripts.get(self.path) or [Answer(404, b"not found")]
                    answer = script.pop(0) if len(script) > 1 else script[0]
                    server._at_once += 1
                    server.most_at_once = max(server.most_at_once, server._at_once)
                try:
                    time.sleep(answer.delay)
                    self._answer(answer)
                finally:
                    with server._lock:
                        server._at_once -= 1

            def _answer(self, answer: Answer) -> None:
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                if answer.undeclared_length:
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for start in range(0, len(answer.body), 64 * 1024):
                        self.wfile.write(answer.body[start : start + 64 * 1024])
                    self.close_connection = True
                    return
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def serve(self, path: str, *answers: Answer) -> str:
        self.scripts[path] = list(answers)
        return self.url(path)

    @contextlib.contextmanager
    def running(self) -> Iterator[PdfServer]:
        thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._httpd.shutdown()
            self._httpd.server_close()
