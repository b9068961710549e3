"""Fuzzing `POST /api/stripe/webhook` (and its alias) with hypothesis.

Every delivery is built with the answers it may get: a signed, well-formed event gets 200;
a broken signature 401 (400 when the header is missing or unreadable); a signed body that is
no storable event 400; an oversized one 413. A 5xx, an exception out of the app, or any
answer outside the allowed set is a finding. Every event id starts with this run's prefix,
so at the end the database tells whether anything unsigned (or refused) was stored.

All findings are collected rather than raised at the first one, so one run reports each
distinct way the endpoint fails (by kind and status) with one input and its traceback.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from core.settings import load_settings
from db.models import WebhookEvent
from db.session import new_session
from tasks.events.registry import HANDLERS
from tests.conftest import ROTATED_SECRET, WEBHOOK_SECRET
from tests.fuzz.conftest import (
    Findings,
    FuzzTally,
    budget,
    last_frames,
    record_summary,
    timeout_seconds,
)

pytestmark = [
    pytest.mark.fuzz,
    pytest.mark.timeout(timeout_seconds()),
    # The app's own threads (the event loop's pool and publisher) touch `random` while
    # hypothesis draws; the strategies here do not.
    pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies"),
]

PATHS = ("/api/stripe/webhook", "/api/billing/webhook")
LIMIT = 1024 * 1024  # Settings.webhook_max_bytes, the default the app runs with here
MAX_ID, MAX_TYPE = 255, 100  # the longest event id and type the endpoint stores
SECRETS = (WEBHOOK_SECRET, ROTATED_SECRET)
UNKNOWN_SECRET = "whsec_not_configured_here"
OK, BAD_REQUEST, UNAUTHORIZED, TOO_LARGE = 200, 400, 401, 413
# The content types a sender might use; the endpoint reads the raw body whatever it says.
CONTENT_TYPES = (
    None,
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "application/octet-stream",
    "application/json; charset=latin-1",
    "*/*",
    "garbage",
)
# Event types: the handled ones (stored `received` and published) and anything else
# (stored `ignored`).
EVENT_TYPES = st.one_of(
    st.sampled_from(sorted(HANDLERS)),
    st.from_regex(r"[a-z_]{1,12}(\.[a-z_]{1,12}){0,3}", fullmatch=True),
)
API_VERSIONS = st.sampled_from(
    [None, "2017-08-15", "2022-11-15", "2025-09-30.clover", "2026-10-28.endive", "x"]
)


def _sign(body: bytes, secret: str, timestamp: int) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def _now() -> int:
    return int(time.time())


@dataclass
class Delivery:
    """One request, and what the endpoint may answer to it."""

    kind: str
    body: bytes
    headers: dict[str, str | bytes]
    allowed: frozenset[int]
    event_id: str | None = None
    # Signed by a configured secret with a fresh timestamp: storing it is allowed (when the
    # answer is 200). Anything else must never reach `webhook_events`.
    signed: bool = False
    chunks: int = 1  # more than one: sent as a chunked stream of that many pieces
    repeat: int = 1  # 2: delivered again, and the second answer must say `duplicate`
    path: str = PATHS[0]

    def describe(self) -> dict[str, Any]:
        body = self.body if len(self.body) <= 300 else self.body[:300] + b"..."
        return {
            "kind": self.kind,
            "path": self.path,
            "headers": {k: v if isinstance(v, str) else repr(v) for k, v in self.headers.items()},
            "body": repr(body),
            "body_bytes": len(self.body),
            "allowed": sorted(self.allowed),
            "chunks": self.chunks,
        }


# --- Strategies --------------------------------------------------------------------------

_ids = itertools.count()
RUN_PREFIX = f"evt_fz{uuid.uuid4().hex[:8]}"


def _new_id() -> str:
    return f"{RUN_PREFIX}_{next(_ids):06d}"


# Any text Stripe could send: UTF-8 (no lone surrogates), and no NUL (odd_fields sends those).
_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)
_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_text, children, max_size=4),
    max_leaves=15,
)
_json_objects = st.dictionaries(_text, _json_values, max_size=5)


@st.composite
def events(draw: st.DrawFn, **fixed: Any) -> dict[str, Any]:
    """A Stripe-shaped event with a fresh id of this run; `fixed` overrides fields."""
    event: dict[str, Any] = {
        "id": _new_id(),
        "object": "event",
        "type": draw(EVENT_TYPES),
        "api_version": draw(API_VERSIONS),
        "created": _now() - draw(st.integers(0, 10**6)),
        "livemode": draw(st.sampled_from([False, False, True, None, "yes"])),
        "data": {"object": draw(_json_objects)},
    }
    if draw(st.booleans()):
        event["account"] = draw(st.sampled_from(["acct_123", None, 7]))
    event.update(fixed)
    return event


def _encode(event: Any, ascii_only: bool = True) -> bytes:
    return json.dumps(event, ensure_ascii=ascii_only).encode()


def _signed_headers(body: bytes, secret: str = WEBHOOK_SECRET, **extra: str) -> dict:
    t = _now()
    return {"Stripe-Signature": f"t={t},v1={_sign(body, secret, t)}", **extra}


def _with_content_type(headers: dict, content_type: str | None) -> dict:
    return headers if content_type is None else {**headers, "Content-Type": content_type}


@st.composite
def signed_events(draw: st.DrawFn, variant: str) -> Delivery:
    """A well-formed event, signed by either configured secret, any content type; sent in
    one piece or as a chunked stream, once or twice."""
    event = draw(events())
    body = _encode(event, ascii_only=draw(st.booleans()))
    body += draw(st.sampled_from([b"", b"\n", b"  \r\n"]))
    headers = _signed_headers(body, draw(st.sampled_from(SECRETS)))
    return Delivery(
        kind=f"signed_event:{variant}",
        body=body,
        headers=_with_content_type(headers, draw(st.sampled_from(CONTENT_TYPES))),
        allowed=frozenset({OK}),
        event_id=event["id"],
        signed=True,
        chunks=draw(st.sampled_from([2, 7])) if variant == "chunked" else 1,
        repeat=2 if variant == "twice" else 1,
    )


@st.composite
def sized_events(draw: st.DrawFn, variant: str) -> Delivery:
    """A signed event padded to a size at the 1 MiB limit, over it, or small."""
    targets = {
        "at_limit": st.sampled_from([LIMIT - 1, LIMIT]),
        "over_limit": st.sampled_from([LIMIT + 1, LIMIT + 4096, 3 * LIMIT]),
        "small": st.integers(200, 64 * 1024),
    }
    target = draw(targets[variant])
    event = draw(events(type="fuzz.sized"))
    event["data"]["object"] = {"pad": ""}
    event["data"]["object"]["pad"] = "x" * max(0, target - len(_encode(event)))
    body = _encode(event)
    return Delivery(
        kind=f"sized_event:{variant}",
        body=body,
        headers=_signed_headers(body),
        allowed=frozenset({OK} if len(body) <= LIMIT else {TOO_LARGE}),
        event_id=event["id"],
        signed=True,
        chunks=draw(st.sampled_from([1, 16])),
    )


@st.composite
def long_fields(draw: st.DrawFn, variant: str) -> Delivery:
    """A signed event whose id or type is at, over or far over the longest stored."""
    id_length, type_length = 30, 20
    if variant == "id_at_limit":
        id_length = MAX_ID
    elif variant == "id_over":
        id_length = draw(st.sampled_from([MAX_ID + 1, 5000]) | st.integers(MAX_ID + 1, 600))
    elif variant == "type_at_limit":
        type_length = MAX_TYPE
    elif variant == "type_over":
        type_length = draw(st.sampled_from([MAX_TYPE + 1, 5000]) | st.integers(MAX_TYPE + 1, 300))
    else:
        id_length, type_length = draw(st.integers(20, 600)), draw(st.integers(1, 300))
    event_id = _new_id()
    event_id += "x" * max(0, id_length - len(event_id))
    event_type = ("fuzz." + "t" * type_length)[:type_length]
    event = draw(events(id=event_id, type=event_type))
    body = _encode(event)
    fits = len(event_id) <= MAX_ID and len(event_type) <= MAX_TYPE
    return Delivery(
        kind=f"long_fields:{variant}",
        body=body,
        headers=_signed_headers(body),
        allowed=frozenset({OK} if fits else {BAD_REQUEST}),
        event_id=event_id,
        signed=True,
    )


@st.composite
def odd_fields(draw: st.DrawFn, variant: str) -> Delivery:
    """A signed event with odd but readable values: any text in the id, NUL characters,
    out-of-range `created`, huge numbers. Stored, or refused with 400; never a 5xx."""
    event = draw(events())
    if variant == "unicode_id":
        event["id"] += draw(st.text(min_size=1, max_size=30))
    elif variant == "nul_in_value":
        event["data"]["object"]["note"] = "a\x00b"
    elif variant == "nul_in_id":
        event["id"] += "\x00"
    elif variant == "created":
        event["created"] = draw(
            st.sampled_from([2**63, 2**62, -(2**63), 10**30, -1, 0, 1.5, "1", True, 2**64 - 1])
        )
    else:  # big_number
        event["data"]["object"]["n"] = draw(st.sampled_from([2**64, -(2**64) - 1, 10**400]))
    body = _encode(event, ascii_only=draw(st.booleans()))
    return Delivery(
        kind=f"odd_fields:{variant}",
        body=body,
        headers=_signed_headers(body),
        allowed=frozenset({BAD_REQUEST} if "nul" in variant else {OK, BAD_REQUEST}),
        event_id=event["id"],
        signed=True,
    )


@st.composite
def not_events(draw: st.DrawFn, variant: str) -> Delivery:
    """A validly signed body that is no storable JSON event object."""
    event = draw(events())
    event_id = event["id"]
    allowed = {BAD_REQUEST}
    if variant == "empty":
        body = draw(st.sampled_from([b"", b" ", b"\n"]))
    elif variant == "non_object":
        body = _encode(draw(st.none() | st.booleans() | st.integers() | _text | st.lists(_text)))
    elif variant == "missing_field":
        name = draw(st.sampled_from(["id", "type", "data", "data.object"]))
        del (event["data"] if name == "data.object" else event)[name.removeprefix("data.")]
        body = _encode(event)
    elif variant == "wrong_type":
        name = draw(st.sampled_from(["id", "type", "data", "data.object"]))
        wrong = draw(st.sampled_from(["", 0, None, [], ["x"], {"a": 1}, 1.5, True]))
        if name.startswith("data") and isinstance(wrong, dict):
            wrong = "x"
        (event["data"] if name == "data.object" else event)[name.removeprefix("data.")] = wrong
        body = _encode(event)
    elif variant == "deep_top":
        depth = draw(st.sampled_from([1025, 5000, 100_000]))
        body = draw(st.sampled_from([b"[", b'{"a":'])) * depth
    elif variant == "deep_inside":
        # orjson reads up to 1024 levels; the event, `data` and `object` take three.
        depth = draw(st.sampled_from([1, 100, 1000, 1021, 1022, 1030, 50_000]))
        event["data"]["object"] = {"nested": "@@NEST@@"}
        body = _encode(event).replace(b'"@@NEST@@"', b"[" * depth + b"]" * depth)
        allowed = {OK} if depth <= 1020 else {BAD_REQUEST} if depth >= 1025 else {OK, BAD_REQUEST}
    elif variant == "bom":
        body = b"\xef\xbb\xbf" + _encode(event)
        allowed = {OK, BAD_REQUEST}
    elif variant == "non_utf8":
        event["data"]["object"]["name"] = "Zoë Ünïcode"
        raw = json.dumps(event, ensure_ascii=False)
        body = draw(
            st.sampled_from(
                [
                    raw.encode("latin-1", errors="replace"),
                    raw.encode("utf-16"),
                    raw.encode() + b"\xff",
                    raw.encode().replace(b"object", b"obj\xc3\x28ct", 1),
                    _encode(event).replace(b"Zo", b"Zo\xed\xa0\x80", 1),  # a UTF-8 surrogate
                ]
            )
        )
        # Signed over the raw bytes: refused as unreadable (400) or unverifiable (401).
        allowed = {BAD_REQUEST, UNAUTHORIZED}
    elif variant == "lone_surrogate":
        body = _encode(event).replace(b'"object": "event"', b'"object": "\\ud800"', 1)
    else:  # random_bytes
        body = draw(st.binary(min_size=1, max_size=2048))
        allowed = {BAD_REQUEST, UNAUTHORIZED}
    return Delivery(
        kind=f"not_event:{variant}",
        body=body,
        headers=_signed_headers(body),
        allowed=frozenset(allowed),
        event_id=event_id if event_id.encode() in body else None,
        signed=True,  # by a configured secret: stored if (and only if) the answer is 200
    )


_HEX = "0123456789abcdef"
_NON_ASCII = st.integers(0x80, 0xFF).map(lambda b: bytes([b]))


@st.composite
def bad_signatures(draw: st.DrawFn, variant: str) -> Delivery:
    """A well-formed event whose Stripe-Signature no configured secret made now."""
    event = draw(events())
    body = _encode(event)
    now = _now()
    good = _sign(body, WEBHOOK_SECRET, now)
    allowed = {UNAUTHORIZED}
    header: str | bytes | None
    if variant == "corrupted_v1":
        at = draw(st.integers(0, len(good) - 1))
        swap = draw(st.sampled_from(_HEX).filter(lambda c: c != good[at]))
        header = f"t={now},v1={good[:at]}{swap}{good[at + 1 :]}"
    elif variant == "truncated_v1":
        header = f"t={now},v1={good[: draw(st.integers(0, len(good) - 1))]}"
    elif variant == "uppercase_v1":
        header = f"t={now},v1={good.upper()}"
    elif variant == "missing_t":
        header = f"v1={good}"
    elif variant == "non_integer_t":
        t = draw(st.sampled_from(["", "abc", f"{now}.0", "1e9", "-", "0x10", " ", "1_0", "²"]))
        header = f"t={t},v1={good}".encode("latin-1")  # as the bytes go over the wire
    elif variant == "huge_t_wrong_sig":
        t = draw(st.sampled_from(["1" + "0" * 12, "1" + "0" * 30, "1" + "0" * 5000]))
        header = f"t={t},v1={good}"
    elif variant == "stale_t":
        t = now - 301 - draw(st.integers(0, 10**9))
        header = f"t={t},v1={_sign(body, WEBHOOK_SECRET, t)}"
    elif variant == "unknown_secret":
        header = f"t={now},v1={_sign(body, UNKNOWN_SECRET, now)}"
    elif variant == "v0_only":
        header = f"t={now},v0={good}"
    elif variant == "other_body":
        header = f"t={now},v1={_sign(body + b' ', WEBHOOK_SECRET, now)}"
    elif variant == "other_t":
        header = f"t={now},v1={_sign(body, WEBHOOK_SECRET, now + 1)}"
    elif variant == "multiple_wrong_v1":
        wrong = [_sign(body, UNKNOWN_SECRET, now), "0" * 64, good[::-1], ""]
        header = f"t={now}," + ",".join(f"v1={w}" for w in wrong)
    elif variant == "empty":
        header = draw(st.sampled_from(["", " ", "\t"]))
        allowed = {BAD_REQUEST}
    elif variant == "missing":
        header = None
        allowed = {BAD_REQUEST}
    elif variant == "random_text":
        header = draw(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E)))
        allowed = {BAD_REQUEST, UNAUTHORIZED}
    elif variant == "non_ascii_in_v1":
        at = draw(st.integers(0, len(good) - 1))
        raw = f"t={now},v1={good}".encode()
        cut = len(raw) - len(good) + at
        header = raw[:cut] + draw(_NON_ASCII) + raw[cut + 1 :]
        allowed = {BAD_REQUEST, UNAUTHORIZED}
    elif variant == "non_ascii_in_t":
        header = b"t=" + str(now).encode() + draw(_NON_ASCII) + f",v1={good}".encode()
        allowed = {BAD_REQUEST, UNAUTHORIZED}
    else:  # random_bytes
        header = draw(
            st.binary(min_size=1, max_size=200).map(
                lambda b: bytes(c for c in b if c >= 0x20 and c != 0x7F) or b"?"
            )
        )
        allowed = {BAD_REQUEST, UNAUTHORIZED}
    headers = {} if header is None else {"Stripe-Signature": header}
    return Delivery(
        kind=f"bad_signature:{variant}",
        body=body,
        headers=_with_content_type(headers, "application/json"),
        allowed=frozenset(allowed),
        event_id=event["id"],
    )


@st.composite
def good_signatures(draw: st.DrawFn, variant: str) -> Delivery:
    """Headers that still carry a valid signature among other things."""
    event = draw(events())
    body = _encode(event)
    now = _now()
    good = _sign(body, draw(st.sampled_from(SECRETS)), now)
    allowed = {OK}
    if variant == "valid_among_wrong_v1":
        wrong = ["0" * 64, _sign(body, UNKNOWN_SECRET, now), "zz"]
        wrong.insert(draw(st.integers(0, len(wrong))), good)
        header: str | bytes = f"t={now}," + ",".join(f"v1={w}" for w in wrong)
    elif variant == "extra_elements":
        header = f"t={now},v1={good},v0={'1' * 64},foo=bar,=,x"
    elif variant in ("future_t", "huge_t"):
        # Stripe's library checks only that a timestamp is not too old.
        t = now + 1000 if variant == "future_t" else draw(st.sampled_from([10**12, 10**30]))
        header = f"t={t},v1={_sign(body, WEBHOOK_SECRET, t)}"
        allowed = {OK, UNAUTHORIZED}
    else:  # non_ascii_after
        header = f"t={now},v1={good},v1=".encode() + draw(_NON_ASCII) + b"x"
        allowed = {OK, BAD_REQUEST, UNAUTHORIZED}
    return Delivery(
        kind=f"good_signature:{variant}",
        body=body,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
        allowed=frozenset(allowed),
        event_id=event["id"],
        signed=True,
    )


@st.composite
def garbage(draw: st.DrawFn, variant: str) -> Delivery:
    """Random bytes with no header, a malformed one, or a signature of the bytes by a secret
    the platform does not know."""
    body = draw(st.binary(max_size=4096))
    header = {
        "no_header": None,
        "malformed_header": "t=1,v1=abc",
        "unknown_secret": f"t={_now()},v1={_sign(body, UNKNOWN_SECRET, _now())}",
    }[variant]
    return Delivery(
        kind=f"garbage:{variant}",
        body=body,
        headers={} if header is None else {"Stripe-Signature": header},
        allowed=frozenset({BAD_REQUEST, UNAUTHORIZED}),
    )


# Each kind of delivery with its variants, and its weight in the example budget; every
# variant runs at least MIN_EXAMPLES times, so none is left to chance.
MIN_EXAMPLES = 2
FAMILIES: tuple[tuple[Any, tuple[str, ...], int], ...] = (
    (signed_events, ("one_piece", "chunked", "twice"), 8),
    (sized_events, ("at_limit", "over_limit", "small"), 2),
    (long_fields, ("id_at_limit", "id_over", "type_at_limit", "type_over", "any_length"), 3),
    (odd_fields, ("unicode_id", "nul_in_value", "nul_in_id", "created", "big_number"), 3),
    (
        not_events,
        (
            "empty",
            "non_object",
            "missing_field",
            "wrong_type",
            "deep_top",
            "deep_inside",
            "bom",
            "non_utf8",
            "lone_surrogate",
            "random_bytes",
        ),
        3,
    ),
    (
        bad_signatures,
        (
            "corrupted_v1",
            "truncated_v1",
            "uppercase_v1",
            "missing_t",
            "non_integer_t",
            "huge_t_wrong_sig",
            "stale_t",
            "unknown_secret",
            "v0_only",
            "other_body",
            "other_t",
            "multiple_wrong_v1",
            "empty",
            "missing",
            "random_text",
            "non_ascii_in_v1",
            "non_ascii_in_t",
            "random_bytes",
        ),
        3,
    ),
    (
        good_signatures,
        ("valid_among_wrong_v1", "extra_elements", "future_t", "huge_t", "non_ascii_after"),
        3,
    ),
    (garbage, ("no_header", "malformed_header", "unknown_secret"), 5),
)


def plan(total: int) -> list[tuple[str, st.SearchStrategy[Delivery], int]]:
    """(variant, its deliveries on either path, examples) for a budget of `total`."""
    weights = sum(weight * len(variants) for _, variants, weight in FAMILIES)
    runs = []
    for family, variants, weight in FAMILIES:
        for variant in variants:
            examples = max(MIN_EXAMPLES, round(total * weight / weights))
            strategy = st.builds(
                lambda delivery, path: replace(delivery, path=path),
                family(variant),
                st.sampled_from(PATHS),
            )
            runs.append((f"{family.__name__}:{variant}", strategy, examples))
    return runs


# --- The test ----------------------------------------------------------------------------


@pytest.fixture
def webhook_client() -> Iterator[TestClient]:
    """The app with its lifespan; exceptions come out of the app (with their traceback)
    rather than as a bare 500. Stored events are published under a broker prefix no worker
    reads, so nothing the fuzzer sends is processed by the run's worker."""
    from api.app import create_app
    from tests.conftest import RUN_ID

    settings_ = load_settings(broker_key_prefix=f"test-{RUN_ID}:fuzz:")
    with TestClient(create_app(settings_), raise_server_exceptions=True) as client:
        yield client


def _send(client: TestClient, delivery: Delivery) -> tuple[int | str, Any, str | None]:
    """(status or "exception", parsed body, traceback) of one request."""
    content: bytes | Iterator[bytes] = delivery.body
    if delivery.chunks > 1:
        size = max(1, -(-len(delivery.body) // delivery.chunks))
        content = iter([delivery.body[i : i + size] for i in range(0, len(delivery.body), size)])
    try:
        response = client.post(delivery.path, content=content, headers=delivery.headers)
    except Exception:
        return "exception", None, last_frames()
    try:
        parsed = response.json()
    except ValueError:
        parsed = response.text[:300]
    return response.status_code, parsed, None


def test_the_webhook_answers_every_delivery_deliberately_and_stores_only_signed_events(
    webhook_client: TestClient,
) -> None:
    tally = FuzzTally("webhook")
    findings = Findings()
    unsigned_ids: set[str] = set()  # never signed by a configured secret, now
    refused_ids: set[str] = set()  # signed but answered other than 200
    accepted_ids: set[str] = set()  # answered 200 as new
    variants: Counter[str] = Counter()

    def check(delivery: Delivery, status: int | str, body: Any, trace: str | None) -> None:
        if status == "exception" or status not in delivery.allowed:
            findings.add(
                delivery.kind,
                f"answered {status}",
                json.dumps({**delivery.describe(), "answer": body}, indent=2) + f"\n{trace or ''}",
            )
            return
        if status == OK and not (
            isinstance(body, dict)
            and body.get("received") is True
            and body.get("event_id") == delivery.event_id
            and isinstance(body.get("duplicate"), bool)
        ):
            findings.add(
                delivery.kind, "200 with a wrong body", {**delivery.describe(), "answer": body}
            )
        elif status != OK and not (isinstance(body, dict) and isinstance(body.get("detail"), str)):
            findings.add(
                delivery.kind,
                f"{status} without a detail",
                {**delivery.describe(), "answer": body},
            )

    def deliver(delivery: Delivery) -> None:
        for attempt in range(delivery.repeat):
            status, body, trace = _send(webhook_client, delivery)
            tally.count(delivery.kind.split(":")[0], status)
            variants[delivery.kind] += 1
            check(delivery, status, body, trace)
            if delivery.event_id is None:
                continue
            if not delivery.signed:
                unsigned_ids.add(delivery.event_id)
            elif status == OK and isinstance(body, dict):
                if attempt == 0 and body.get("duplicate") is False:
                    accepted_ids.add(delivery.event_id)
                if attempt == 1 and body.get("duplicate") is not True:
                    findings.add(
                        delivery.kind,
                        "second delivery not a duplicate",
                        {**delivery.describe(), "answer": body},
                    )
            elif status != OK:
                refused_ids.add(delivery.event_id)

    try:
        for _, deliveries, examples in plan(budget("webhook")):
            settings(max_examples=examples)(given(deliveries)(deliver))()
        stored_ids = _stored_ids()
    finally:
        _park_fuzz_rows()
    stored_unsigned = sorted(stored_ids & unsigned_ids)
    stored_refused = sorted(stored_ids & refused_ids)
    stored_unexplained = sorted(stored_ids - accepted_ids - unsigned_ids - refused_ids)
    lost = sorted(accepted_ids - stored_ids)
    tally.extra.update(
        stored=len(stored_ids),
        unsigned_sent=len(unsigned_ids),
        stored_unsigned=len(stored_unsigned),
        variants=dict(sorted(variants.items())),
        findings=findings.summary(),
    )
    record_summary(tally)
    problems = []
    if findings:
        problems.append("Answers outside the contract:\n" + findings.report())
    if stored_unsigned:
        problems.append(f"Unsigned events were stored: {stored_unsigned[:10]}")
    if stored_refused or stored_unexplained:
        problems.append(f"Refused events were stored: {(stored_refused + stored_unexplained)[:10]}")
    if lost:
        problems.append(f"Acknowledged (200) but not stored: {lost[:10]}")
    assert not problems, "\n\n".join(problems)


def _stored_ids() -> set[str]:
    with new_session() as session:
        return set(
            session.scalars(
                select(WebhookEvent.stripe_event_id).where(
                    WebhookEvent.stripe_event_id.startswith(RUN_PREFIX, autoescape=True)
                )
            )
        )


def _park_fuzz_rows() -> None:
    """Mark what the fuzzer stored `ignored`, so no sweep or later test ever processes it."""
    with new_session() as session, session.begin():
        session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.stripe_event_id.startswith(RUN_PREFIX, autoescape=True))
            .values(status="ignored", last_error="stored by the webhook fuzzer")
        )
