"""A cap on request bodies, applied before routing, auth and parsing.

No route but the webhook takes more than a small JSON object, so anything larger is refused
with 413 before a handler, a dependency or a parser sees it. A declared `Content-Length`
over the cap is refused unread; a streamed (chunked) body is read into memory up to the cap
and refused as soon as it passes it, never read further. The webhook paths are left alone:
they read their raw body themselves under their own, larger cap (`WEBHOOK_MAX_BYTES`).

The body is read here, before the application runs, rather than counted as the handler
reads it: a route that never reads its body (most GETs, `POST /api/billing/portal`) would
otherwise answer 401 or 200 to a 10 MB upload instead of 413."""

from __future__ import annotations

from collections.abc import Iterable

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_MAX_BYTES = 64 * 1024


class BodySizeLimit:
    """Pure ASGI middleware: 413 for an HTTP request body over `max_bytes`."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int = DEFAULT_MAX_BYTES, exempt_paths: Iterable[str] = ()
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt_paths = frozenset(exempt_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _route_path(scope) in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send)
            return
        # Read in full (a bodiless request is one empty message, at once), counting as it
        # comes: neither a missing nor a false Content-Length lets more than the cap in.
        received: list[Message] = []
        size = 0
        while True:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":
                break  # the client went away; the app sees that in turn
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(send)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(received, receive), send)

    async def _refuse(self, send: Send) -> None:
        limit = f"{self.max_bytes // 1024} KiB" if self.max_bytes % 1024 == 0 else "the limit"
        body = orjson.dumps({"detail": f"The request body is over {limit}."})
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    # The rest of the body is never read, so the connection cannot be reused.
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _route_path(scope: Scope) -> str:
    """The path routes match against (without the ASGI `root_path` a proxy may add)."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        return path[len(root_path) :] or "/"
    return path


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _replay(received: list[Message], receive: Receive) -> Receive:
    """A `receive` that hands the app the messages already read, then the server's own."""
    pending = iter(received)

    async def replayed() -> Message:
        message = next(pending, None)
        return message if message is not None else await receive()

    return replayed
