"""The safe v1 strategies under a real crowd: a 2-process server, 100 connections at once."""

from __future__ import annotations

import asyncio
from collections import Counter
from uuid import uuid4

import aiohttp
import asyncpg
import pytest

from tests.support import ledger_state, running_server

pytestmark = pytest.mark.concurrency

QUANTITY = 300
CLAIMS = 1_000
CONNECTIONS = 100


async def give(session: aiohttp.ClientSession, url: str, user: str) -> tuple[int, str | None]:
    async with session.post(url, headers={"X-User-Id": user}) as response:
        await response.read()
        return response.status, response.headers.get("X-User-Id")


@pytest.mark.parametrize("path", ["give-transaction", "give-transaction-pgfunction"])
async def test_safe_strategies_grant_exactly_the_quantity(
    database_url: str, pool: asyncpg.Pool, path: str
) -> None:
    coupon_id = uuid4()
    await pool.execute(
        "INSERT INTO coupon (id, name, type, quantity) VALUES ($1, 'crowd', 'percent', $2)",
        coupon_id,
        QUANTITY,
    )
    with running_server(database_url, workers=2) as server:
        url = f"{server.base_url}/coupon/api/v1/{path}/{coupon_id}"
        connector = aiohttp.TCPConnector(limit=CONNECTIONS)
        async with aiohttp.ClientSession(connector=connector) as session:
            results = await asyncio.gather(*(give(session, url, f"u{n}") for n in range(CLAIMS)))
    statuses = Counter(status for status, _ in results)
    assert statuses == {200: QUANTITY, 409: CLAIMS - QUANTITY}
    granted_users = {user for status, user in results if status == 200}
    state = await ledger_state(pool, coupon_id)
    assert state.quantity_left == 0
    assert state.ledger_rows == QUANTITY
    assert state.distinct_users == QUANTITY
    ledger_users = {r["userid"] for r in await pool.fetch("SELECT userid FROM coupon_given_events")}
    assert ledger_users == granted_users
