"""Reading requests safely: bounded bodies, strict JSON, ids, pages and headers.

Every failure here is the client's and raises InvalidRequest with its HTTP status (400
unreadable in v1, 413 too big, 422 invalid); the error handlers turn it into a response body,
never a stack trace. v2 bodies are decoded straight into their msgspec type (unknown fields
refused), so a wrong type, a missing field or a value out of range is one 422 with msgspec's
message. Cursors are opaque to clients: the listing's keyset (timestamp, id) as text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from uuid import UUID

import msgspec
from starlette.requests import Request

from couponapi.api import fastpath
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


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it passes `limit` bytes (read on the fast
    path: api/fastpath.py)."""
    try:
        return await fastpath.read_body(request, limit)
    except fastpath.BodyTooLarge:
        raise InvalidRequest(413, f"request body over {limit} bytes") from None


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


# No control characters (NUL above all, which PostgreSQL text cannot hold): refused with 422
# before any write, so even the naive strategy cannot half-write on a bad id, and a batch of
# group commit cannot fail for one claim's text. `(?![\s\S])` is the true end of the string
# (Python's `$` also matches before a last \n).
PRINTABLE = r"^[^\x00-\x1f\x7f]+$(?![\s\S])"
# Any text PostgreSQL can store: everything but NUL (names and types of coupons).
STORABLE = r"^[^\x00]*$(?![\s\S])"
DEFAULT_PAGE = 50
MAX_PAGE = 200
MAX_KEY_LENGTH = 255


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
    # isascii: str.isdigit() is also true of digits int() refuses, such as "²".
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_PAGE:
        raise InvalidRequest(422, f"limit must be an integer from 1 to {MAX_PAGE}")
    return int(raw)


# A cursor is `<microseconds since 1970 UTC>-<id as 32 hex digits>`: the keyset of the last
# row seen. Every string of this shape decodes (the OpenAPI document gives the pattern), so a
# client generated from the document cannot send a cursor we refuse.
CURSOR_PATTERN = "^$|^[0-9]{1,16}-[0-9a-f]{32}$"  # empty: the first page
_CURSOR = re.compile(CURSOR_PATTERN)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def encode_cursor(at: datetime, last_id: UUID) -> str:
    """The opaque cursor that continues after the row (at, last_id)."""
    return f"{(at - _EPOCH) // timedelta(microseconds=1)}-{last_id.hex}"


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
    if _CURSOR.fullmatch(raw) is None:
        raise InvalidRequest(422, "cursor is not valid: pass next_cursor as given")
    micros, _, last_id = raw.partition("-")
    return _EPOCH + timedelta(microseconds=int(micros)), UUID(hex=last_id)


KEY_PATTERN = "^[!-~]+$"  # visible ASCII
_KEY = re.compile(KEY_PATTERN)


def idempotency_key(request: Request) -> str | None:
    """The Idempotency-Key header: 1..255 visible ASCII characters, or absent."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_KEY_LENGTH or _KEY.fullmatch(key) is None:
        raise InvalidRequest(422, f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} visible ASCII")
    return key
