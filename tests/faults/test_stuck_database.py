"""A lock held too long, a statement that does not end, a pool with no free connection:
each claim gives up after its bound with 503 and Retry-After, and writes nothing.

The bounds are the server's settings (lock_timeout, statement_timeout on every pool
connection; the pool's wait limit), made short here so the test is quick.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

import asyncpg
import httpx
import pytest

from couponapi.app import create_app
from couponapi.config import Settings
from tests.faults.helpers import books, new_coupon, record
from tests.v2_support import ADMIN

V1 = "/coupon/api/v1"
ROUTES = {
    "v1-locking": V1 + "/give-transaction/{}",
    "v1-function": V1 + "/give-transaction-pgfunction/{}",
    "v2": "/api/v2/coupons/{}/claims",
}


@asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


async def post_claim(http: httpx.AsyncClient, route: str, coupon_id: UUID) -> httpx.Response:
    return await http.post(
        ROUTES[route].format(coupon_id),
        headers={"X-User-Id": "stuck-user", **ADMIN},
        json={"user_id": "stuck-user"} if route == "v2" else None,
    )


@asynccontextmanager
async def row_locked(pool: asyncpg.Pool, coupon_id: UUID) -> AsyncIterator[None]:
    """The coupon's row locked by someone else until the block ends."""
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute("SELECT 1 FROM coupon WHERE id = $1 FOR UPDATE", coupon_id)
        yield


def message(response: httpx.Response) -> str:
    body = response.json()
    return str(body.get("errorDescription") or body.get("detail"))


async def assert_untouched(pool: asyncpg.Pool, coupon_id: UUID, route: str) -> None:
    state = await books(pool, coupon_id, route)
    assert (state.left, state.ledger_rows) == (state.quantity, 0)


@pytest.mark.parametrize("route", list(ROUTES))
async def test_a_claim_behind_a_stuck_lock_times_out(
    settings: Settings, pool: asyncpg.Pool, route: str
) -> None:
    coupon_id = await new_coupon(pool, 5)
    short = settings.model_copy(update={"lock_timeout_ms": 200})
    async with app_client(short) as http, row_locked(pool, coupon_id):
        response = await post_claim(http, route, coupon_id)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "timed out waiting for a lock" in message(response)
    await assert_untouched(pool, coupon_id, route)


@pytest.mark.parametrize("route", list(ROUTES))
async def test_a_statement_that_does_not_end_is_cancelled(
    settings: Settings, pool: asyncpg.Pool, route: str
) -> None:
    coupon_id = await new_coupon(pool, 5)
    # A ledger insert that takes 10 s: what a stuck disk or a runaway trigger looks like.
    await pool.execute(
        """CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN PERFORM pg_sleep(10); RETURN NEW; END $$;
           CREATE TRIGGER stall BEFORE INSERT ON coupon_given_events
               FOR EACH ROW EXECUTE FUNCTION stall();
           CREATE TRIGGER stall BEFORE INSERT ON claim
               FOR EACH ROW EXECUTE FUNCTION stall();"""
    )
    short = settings.model_copy(update={"statement_timeout_ms": 300})
    async with app_client(short) as http:
        response = await post_claim(http, route, coupon_id)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "took too long" in message(response)
    await assert_untouched(pool, coupon_id, route)


async def test_a_request_with_no_free_connection_gives_up(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    coupon_id = await new_coupon(pool, 5)
    tight = settings.model_copy(update={"pool_size": 1, "pool_timeout": 0.3})
    async with app_client(tight) as http:
        async with row_locked(pool, coupon_id):
            # The one connection waits for the lock; the next request waits for it.
            first = asyncio.create_task(post_claim(http, "v1-locking", coupon_id))
            await asyncio.sleep(0.1)
            second = await http.get(f"{V1}/{coupon_id}")
            assert second.status_code == 503
            assert second.headers["retry-after"] == "1"
            assert "no database connection came free" in message(second)
        assert (await first).status_code == 200  # the first one goes on once the lock is free
    state = await books(pool, coupon_id, "v1-locking")
    assert (state.left, state.ledger_rows) == (4, 1)
    record(
        "stuck_database",
        {
            "lock_timeout": "503 + Retry-After, nothing written (3 claim routes)",
            "statement_timeout": "503 + Retry-After, nothing written (3 claim routes)",
            "pool_wait_limit": "503 + Retry-After; the waiting claim completes after",
        },
    )
