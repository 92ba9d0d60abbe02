"""A refused claim leaves no reference cycle behind: its objects die with the request.

An error kept in a local variable of a frame it was raised from is a cycle (error ->
traceback -> frame -> error) that holds every frame of the request until the garbage
collector runs: on the sold-out path that was ~46 objects per refusal, and the crowd at a
sold-out coupon pays for collecting them (README "Performance")."""

from __future__ import annotations

import gc
from uuid import UUID, uuid4

import asyncpg
import pytest
from starlette.types import ASGIApp, Message

from couponapi.app import create_app
from couponapi.config import Settings
from couponapi.db.queries import query
from tests.v2_support import TOKEN


async def post(app: ASGIApp, path: str, body: bytes) -> int:
    """One POST straight through the ASGI app (no HTTP client, whose objects would count)."""
    status = 0
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path.partition("?")[0], "raw_path": path.encode(),
        "query_string": path.partition("?")[2].encode(), "root_path": "",
        "server": ("127.0.0.1", 1323), "client": ("127.0.0.1", 40000),
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"authorization", f"Bearer {TOKEN}".encode())],
    }  # fmt: skip

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/v2/coupons/{sold_out}/claims", b'{"user_id":"u"}', 409),
        ("/api/v2/coupons/{sold_out}/claims?strategy=function", b'{"user_id":"u"}', 409),
        ("/api/v2/coupons/{unknown}/claims", b'{"user_id":"u"}', 404),
        ("/api/v2/coupons/not-an-id/claims", b'{"user_id":"u"}', 422),
        ("/coupon/api/v1/give-group-commit/{sold_out}", b'{"userId":"u"}', 409),
        ("/coupon/api/v1/give-atomic/{sold_out}", b'{"userId":"u"}', 409),
    ],
)
async def test_a_refusal_leaves_no_garbage_cycle(
    settings: Settings, pool: asyncpg.Pool, path: str, body: bytes, status: int
) -> None:
    sold_out: UUID = uuid4()
    await pool.execute(query("insert_coupon"), sold_out, "gone", "t", 0, 1, None, None, None)
    path = path.format(sold_out=sold_out, unknown=uuid4())
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        assert [await post(app, path, body) for _ in range(3)] == [status] * 3  # warm caches
        gc.collect()
        gc.disable()
        try:
            answers = [await post(app, path, body) for _ in range(20)]
            unreachable = gc.collect()
        finally:
            gc.enable()
    assert answers == [status] * 20
    assert unreachable == 0
