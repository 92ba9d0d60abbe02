"""Reading requests safely: bounded bodies, strict JSON, ids, pages and headers.

Every failure here is the client's and raises InvalidRequest with its HTTP status (400
unreadable in v1, 413 too big, 422 invalid); the error handlers turn it into a response body,
never a stack trace. v2 bodies are decoded straight into their msgspec type (unknown fields
refused), so a wrong type, a missing field or a value out of range is one 422 with msgspec's
message. Cursors are opaque to clients: base64url of (timestamp, id), the listing's keyset.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any
from urllib.parse import parse_qsl
from uuid import UUID

import msgspec
from msgspec import Meta
from starlette.requests import ClientDisconnect, Request
from starlette.types import Scope

from couponapi.api.deps import settings_of
from couponapi.db.queries import Keyset


class InvalidRequest(Exception):
    """The request cannot be served as sent: 400 (unreadable), 413 (too big), 422 (invalid)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@lru_cache(maxsize=4096)
def uuid_of(value: str) -> UUID:
    """UUID(value), remembered: a crowd names the same coupon in every request, and UUID()
    parses in Python (~2 µs). A malformed value raises ValueError and is not remembered."""
    return UUID(value)


def parse_uuid(value: str, what: str = "coupon id") -> UUID:
    """A UUID from a path segment; 400 when it is not one."""
    try:
        return uuid_of(value)
    except ValueError:
        raise InvalidRequest(400, f"malformed {what} {value[:64]!r}: expected a UUID") from None


def header(request: Request, name: bytes) -> str | None:
    """The first value of the header `name` (lower case, as ASGI servers give names), as
    `request.headers.get` reads it, without building a Headers object for the claim path."""
    headers: list[tuple[bytes, bytes]] = request.scope["headers"]
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it passes `limit` bytes."""
    declared = header(request, b"content-length")
    length = int(declared) if declared is not None and declared.isdigit() else None
    if length is not None and length > limit:
        raise InvalidRequest(413, f"request body over {limit} bytes")
    if length == 0:
        return b""
    # ASGI messages read directly: request.stream() is an async generator per request.
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise InvalidRequest(413, f"request body over {limit} bytes")
        chunks.append(chunk)
        # HTTP ends the body after Content-Length bytes: stop there. granian announces the
        # end in one more, empty message, and every receive() is a hand-over between its
        # Rust threads and the event loop (~50 us of server CPU a claim, docs/performance.md).
        more = message.get("more_body", False) and size != length
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def decode_json_object(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, None when empty; 400 when it is not a JSON object."""
    if not body.strip():
        return None
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError as error:
        raise InvalidRequest(400, f"malformed JSON body: {error}") from None
    if not isinstance(decoded, dict):
        raise InvalidRequest(400, "the JSON body must be an object")
    return decoded


def convert[T](data: dict[str, Any], model: type[T]) -> T:
    """Validate decoded JSON against a msgspec model; 422 with msgspec's message otherwise."""
    try:
        return msgspec.convert(data, model)
    except msgspec.ValidationError as error:
        raise InvalidRequest(422, str(error)) from None


DEFAULT_PAGE = 50
MAX_PAGE = 200
MAX_KEY_LENGTH = 255
Cursor = tuple[Annotated[datetime, Meta(tz=True)], UUID]  # a Keyset, decoded strictly


# A Decoder made once per type: decode(body, type=...) looks the type up on every call.
_DECODERS: dict[type[Any], msgspec.json.Decoder[Any]] = {}


def _decoder[T](model: type[T]) -> msgspec.json.Decoder[T]:
    decoder = _DECODERS.get(model)
    if decoder is None:
        decoder = _DECODERS[model] = msgspec.json.Decoder(model)
    return decoder


async def read_json[T](request: Request, model: type[T]) -> T:
    """The body decoded as `model`; 413 when too large, 422 when empty or invalid."""
    body = await read_body(request, settings_of(request).max_body_bytes)
    if not body.strip():
        raise InvalidRequest(422, "a JSON body is required")
    try:
        return _decoder(model).decode(body)
    except msgspec.ValidationError as error:
        raise InvalidRequest(422, str(error)) from None
    except msgspec.DecodeError as error:
        raise InvalidRequest(422, f"malformed JSON body: {error}") from None


def named_strategy(scope: Scope) -> str | None:
    """The claim strategy a request names with `?strategy=` (the last, if twice), else None.

    What Starlette's `request.query_params.get("strategy")` gives, without building them all:
    a claim's endpoint and its metrics both ask. A query with no escapes is just split."""
    # str, not bytes: `b"..." in bytes` first tries its operand as an int (~250 ns a test).
    text = scope["query_string"].decode("latin-1")
    if "strategy" not in text and "%" not in text:  # the name cannot be in it
        return None
    if "%" in text or "+" in text:
        pairs = parse_qsl(text, keep_blank_values=True)
    else:
        pairs = [(name, value) for name, _, value in (p.partition("=") for p in text.split("&"))]
    return dict(pairs).get("strategy")


def path_uuid(request: Request, name: str) -> UUID:
    """A UUID path parameter; 422 when it is not one."""
    value: str = request.path_params[name]
    try:
        return uuid_of(value)
    except ValueError:
        raise InvalidRequest(422, f"malformed {name} {value[:64]!r}: expected a UUID") from None


def page_limit(request: Request) -> int:
    """`?limit=` (1..MAX_PAGE, default DEFAULT_PAGE)."""
    raw = request.query_params.get("limit")
    if raw is None:
        return DEFAULT_PAGE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise InvalidRequest(422, f"limit must be an integer from 1 to {MAX_PAGE}")
    return int(raw)


def encode_cursor(at: datetime, last_id: UUID) -> str:
    """The opaque cursor that continues after the row (at, last_id)."""
    raw = msgspec.json.encode([at, last_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def page_of[T](
    found: Sequence[T], limit: int, keyset: Callable[[T], tuple[datetime, UUID]]
) -> tuple[list[T], str | None]:
    """One page from `found` (fetched with `limit + 1`, so one more tells that more exist): its
    first `limit` items and the cursor that continues after them (None: the last page)."""
    items = list(found[:limit])
    cursor = encode_cursor(*keyset(items[-1])) if len(found) > limit else None
    return items, cursor


def page_cursor(request: Request) -> Keyset | None:
    """`?cursor=` decoded, None for the first page; 422 when it is not one of ours."""
    raw = request.query_params.get("cursor")
    if not raw:
        return None
    try:
        decoded = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        cursor: Cursor = msgspec.json.decode(decoded, type=Cursor)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise InvalidRequest(422, "cursor is not valid: pass next_cursor as given") from None
    return cursor


def idempotency_key(request: Request) -> str | None:
    """The Idempotency-Key header: 1..255 visible ASCII characters, or absent."""
    key = header(request, b"idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not all(33 <= ord(c) <= 126 for c in key):
        raise InvalidRequest(422, f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} visible ASCII")
    return key
