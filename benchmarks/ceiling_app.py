"""The ceiling: the least a Stripe webhook endpoint must do, and nothing more.

`POST /api/stripe/webhook` reads the raw body, checks the `Stripe-Signature` header with
`stripe.WebhookSignature.verify_header` against every secret in STRIPE_WEBHOOK_SECRET
(HMAC-SHA256 and the 300 s tolerance, exactly as the platform does), parses the JSON with
orjson (the platform's parser, so both sides pay the same for it), and answers 200 with the
platform's receipt. It stores nothing and publishes nothing.

It runs under the same uvicorn settings as `billing api`: one process, uvloop and httptools
(uvicorn's defaults when installed), no access log, proxy headers on.

    .venv/bin/python benchmarks/ceiling_app.py --host 127.0.0.1 --port 8001
"""

from __future__ import annotations

import argparse
import os

import orjson
import uvicorn
from fastapi import FastAPI, Request, Response

from api.signature import verify_signature

TOLERANCE_SECONDS = 300
SECRETS = tuple(
    s.strip() for s in os.environ.get("STRIPE_WEBHOOK_SECRET", "").split(",") if s.strip()
)

app = FastAPI(title="Webhook ceiling")


def _answer(status: int, content: dict[str, object]) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")


@app.post("/api/stripe/webhook")
async def receive(request: Request) -> Response:
    header = request.headers.get("stripe-signature", "").strip()
    if not header:
        return _answer(400, {"detail": "Missing Stripe-Signature header."})
    body = await request.body()
    # The platform's own check, so both sides pay exactly the same for it.
    if not verify_signature(body, header, SECRETS, TOLERANCE_SECONDS):
        return _answer(401, {"detail": "Signature does not match, or it is too old."})
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _answer(400, {"detail": "Body is not JSON."})
    if not isinstance(event, dict) or not isinstance(event.get("id"), str):
        return _answer(400, {"detail": "Body is not a Stripe event object."})
    return _answer(200, {"received": True, "duplicate": False, "event_id": event["id"]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        workers=1,
        access_log=False,
        proxy_headers=True,
        log_level="info",
    )


if __name__ == "__main__":
    main()
