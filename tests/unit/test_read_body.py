"""read_body reads what HTTP framing says the body is, and no further message."""

from __future__ import annotations

import pytest
from starlette.requests import ClientDisconnect, Request
from starlette.types import Message

from couponapi.api.inputs import InvalidRequest, read_body


def request_with(messages: list[Message], content_length: int | None) -> Request:
    """A request whose receive() hands out `messages` in order, then fails the test."""
    headers = [] if content_length is None else [(b"content-length", str(content_length).encode())]
    pending = list(messages)

    async def receive() -> Message:
        assert pending, "read_body asked for a message after the body was complete"
        return pending.pop(0)

    return Request({"type": "http", "method": "POST", "headers": headers}, receive)


def body(data: bytes, more: bool) -> Message:
    return {"type": "http.request", "body": data, "more_body": more}


async def test_stops_at_content_length_without_waiting_for_the_closing_message() -> None:
    # granian's way: the data with more_body=True, then an empty closing message.
    request = request_with([body(b'{"a":', True), body(b"1}", True)], content_length=7)
    assert await read_body(request, limit=100) == b'{"a":1}'


async def test_content_length_zero_reads_no_message() -> None:
    assert await read_body(request_with([], content_length=0), limit=100) == b""


async def test_without_content_length_reads_until_more_body_ends() -> None:
    messages = [body(b"ab", True), body(b"cd", True), body(b"", False)]
    assert await read_body(request_with(messages, content_length=None), limit=100) == b"abcd"


@pytest.mark.parametrize(
    ("messages", "content_length"),
    [
        ([], 101),  # refused from the header, before any message
        ([body(b"x" * 60, True), body(b"x" * 60, False)], None),  # refused as it arrives
    ],
)
async def test_over_the_limit_is_413(messages: list[Message], content_length: int | None) -> None:
    with pytest.raises(InvalidRequest) as refused:
        await read_body(request_with(messages, content_length), limit=100)
    assert refused.value.status == 413


async def test_a_disconnect_mid_body_is_raised() -> None:
    messages = [body(b"ab", True), {"type": "http.disconnect"}]
    with pytest.raises(ClientDisconnect):
        await read_body(request_with(messages, content_length=10), limit=100)
