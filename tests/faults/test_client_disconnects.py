"""Clients that hang up while their claim is in flight: granted in full, or not at all.

The coupons' rows are held locked by the test, so every claim is stuck inside the server (in
PostgreSQL waiting for the lock, or in the pool's queue) when its client gives up. Then the
locks are let go. Each claim must end whole: a ledger row with the quantity taken, or nothing;
and a v2 claim sent again with the same Idempotency-Key gets the one grant, never a second.
"""

from __future__ import annotations

import asyncio

import aiohttp
import asyncpg
import pytest

from tests.faults.helpers import Crowd, assert_nothing_lost, claim, new_coupon, record, wait_until
from tests.support import running_server

pytestmark = pytest.mark.concurrency

ROUTES = ("v1-locking", "v1-function", "v2")
CLAIMS = 30  # per route
QUANTITY = 20  # fewer than the claims: some hang-ups land on a sold-out coupon


async def busy_backends(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval(
        """SELECT count(*) FROM pg_stat_activity
            WHERE application_name = 'couponapi' AND state <> 'idle'"""
    )
    return count


async def test_claims_whose_clients_hang_up_end_whole(
    database_url: str, pool: asyncpg.Pool
) -> None:
    coupons = {route: await new_coupon(pool, QUANTITY) for route in ROUTES}
    keys = [f"key-{n}" for n in range(CLAIMS)]
    sent = [
        (route, key if route == "v2" else None, f"{route}-user-{n}")
        for route in ROUTES
        for n, key in enumerate(keys)
    ]
    crowd = Crowd()
    with running_server(database_url, workers=2) as server:
        async with aiohttp.ClientSession() as session:
            lock = await pool.acquire()
            transaction = lock.transaction()
            await transaction.start()
            try:
                # Holds the rows every claim needs; the claims queue behind them.
                await lock.execute(
                    "SELECT 1 FROM coupon WHERE id = ANY($1::uuid[]) FOR UPDATE",
                    list(coupons.values()),
                )
                hung_up = await asyncio.gather(
                    *(
                        claim(session, server.base_url, route, coupons[route], 0.5, key, user)
                        for route, key, user in sent
                    )
                )
            finally:
                await transaction.rollback()
                await pool.release(lock)
            assert {a.error for a in hung_up} == {"timeout"}

            async def settled() -> bool:
                return await busy_backends(pool) == 0

            assert await wait_until(settled)
            granted_while_gone = {
                route: (await assert_nothing_lost(pool, coupons[route], crowd, route)).ledger_rows
                for route in ROUTES
            }
            # The same keys again: each gets its one claim (the first one's, replayed, or a
            # new one), never a second; the quantity caps the rest.
            again = await asyncio.gather(
                *(
                    claim(session, server.base_url, route, coupons[route], 15, key, user)
                    for route, key, user in sent
                    if route == "v2"
                )
            )
            crowd.answers.extend(again)
    assert sorted(a.status or 0 for a in again) == [201] * QUANTITY + [409] * (CLAIMS - QUANTITY)
    for route in ROUTES:
        await assert_nothing_lost(pool, coupons[route], crowd, route)
    state = await assert_nothing_lost(pool, coupons["v2"], crowd, "v2")
    granted = [a.claim_id for a in again if a.status == 201]
    assert len(set(granted)) == QUANTITY  # one claim per key
    assert set(granted) == state.claim_ids
    record(
        "client_disconnect",
        {
            "claims_abandoned": len(sent),
            "granted_after_the_client_left": granted_while_gone,
            "v2_keys_sent_again": CLAIMS,
            "v2_second_grants": 0,
            "half_written": 0,
        },
    )
