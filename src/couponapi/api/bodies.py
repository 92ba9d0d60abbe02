"""Reading requests safely: bounded bodies, strict JSON, ids that must parse.

Every failure here is the client's and raises InvalidRequest with its HTTP status; the
error handlers turn it into a response body, never a stack trace.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from uuid import UUID

import msgspec
from starlette.requests import ClientDisconnect, Request


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
        # Rust threads and the event loop (~50 us of server CPU a claim, README "Performance").
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
