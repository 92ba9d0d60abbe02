"""Group commit (v1) under a real crowd: three server processes in two `serve` commands, every
safe strategy on one coupon at once, and a batch that fails in the middle of the crowd."""

from __future__ import annotations

import asyncio
from collections import Counter
from uuid import UUID, uuid4

import aiohttp
import asyncpg
import pytest

from tests.integration.test_speed_strategies import POISON_TRIGGER, new_coupon
from tests.support import running_server
from tests.v2_support import ADMIN

pytestmark = pytest.mark.concurrency

SAFE_PATHS = ["give-group-commit", "give-atomic", "give-transaction-pgfunction", "give-transaction"]


async def give(session: aiohttp.ClientSession, url: str, user: str) -> tuple[int, str]:
    async with session.post(url, headers={"X-User-Id": user}) as response:
        await response.read()
        return response.status, user


async def crowd(
    bases: list[str], coupon_id: UUID, users: list[str], paths: list[str]
) -> list[tuple[int, str]]:
    """Every user claims once, round-robin over the servers and the routes."""
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(connector=connector) as session:
        return await asyncio.gather(
            *(
                give(
                    session,
                    f"{bases[n % len(bases)]}/coupon/api/v1/{paths[n % len(paths)]}/{coupon_id}",
                    user,
                )
                for n, user in enumerate(users)
            )
        )


async def ledger_users(pool: asyncpg.Pool, coupon_id: UUID) -> Counter[str]:
    rows = await pool.fetch(
        "SELECT userid FROM coupon_given_events WHERE couponid = $1::uuid::text", coupon_id
    )
    return Counter(row["userid"] for row in rows)


async def test_every_safe_strategy_at_once_from_three_processes(
    database_url: str, pool: asyncpg.Pool
) -> None:
    quantity = 500
    coupon_id = await new_coupon(pool, quantity)
    # Mixed users: a third of the crowd claims twice (v1 has no per-user limit).
    users = [f"u{n % 1_000}" for n in range(1_500)]
    with (
        running_server(database_url, workers=2) as first,
        running_server(database_url, workers=1) as second,
    ):
        results = await crowd([first.base_url, second.base_url], coupon_id, users, SAFE_PATHS)
    statuses = Counter(status for status, _ in results)
    assert statuses == {200: quantity, 409: len(users) - quantity}
    granted = Counter(user for status, user in results if status == 200)
    assert await ledger_users(pool, coupon_id) == granted
    assert await pool.fetchval("SELECT quantity FROM coupon WHERE id = $1", coupon_id) == 0


async def test_a_failing_batch_under_load_fails_only_its_own_claims(
    database_url: str, pool: asyncpg.Pool
) -> None:
    await pool.execute(POISON_TRIGGER)
    quantity = 10_000
    coupon_id = await new_coupon(pool, quantity)
    users = [f"u{n}" for n in range(800)]
    users[400] = "poison"
    with running_server(database_url, workers=2) as server:
        results = await crowd([server.base_url], coupon_id, users, ["give-group-commit"])
    statuses = Counter(status for status, _ in results)
    assert set(statuses) == {200, 503}
    assert 1 <= statuses[503] <= 128  # the poisoned batch only (at most MAX_BATCH claims)
    assert (503, "poison") in results
    granted = Counter(user for status, user in results if status == 200)
    assert await ledger_users(pool, coupon_id) == granted
    left = await pool.fetchval("SELECT quantity FROM coupon WHERE id = $1", coupon_id)
    assert quantity - left == statuses[200]


async def claim_v2(
    session: aiohttp.ClientSession, url: str, user: str, key: str | None
) -> tuple[int, str, str | None]:
    headers = {"Idempotency-Key": key, **ADMIN} if key else ADMIN
    async with session.post(url, json={"user_id": user}, headers=headers) as response:
        body = await response.json(content_type=None)
        return response.status, user, body.get("id") if response.status == 201 else None


async def test_v2_group_commit_from_three_processes_keeps_every_rule(
    database_url: str, pool: asyncpg.Pool
) -> None:
    quantity, limit = 300, 2
    coupon_id = uuid4()
    await pool.execute(
        "INSERT INTO coupon (id, type, quantity, per_user_limit) VALUES ($1, 'x', $2, $3)",
        coupon_id,
        quantity,
        limit,
    )
    # 200 users try 4 times each (limit 2), and one client retries one key 30 times.
    crowd: list[tuple[str, str | None]] = [(f"u{n % 200}", None) for n in range(800)]
    crowd[::27] = [("keyed", "the-key")] * len(crowd[::27])
    with (
        running_server(database_url, workers=2) as first,
        running_server(database_url, workers=1) as second,
    ):
        bases = [first.base_url, second.base_url]
        connector = aiohttp.TCPConnector(limit=200)
        async with aiohttp.ClientSession(connector=connector) as session:
            results = await asyncio.gather(
                *(
                    claim_v2(
                        session,
                        f"{bases[n % 2]}/api/v2/coupons/{coupon_id}/claims?strategy=group_commit",
                        user,
                        key,
                    )
                    for n, (user, key) in enumerate(crowd)
                )
            )
    statuses = Counter(status for status, _, _ in results)
    assert set(statuses) <= {201, 409}
    keyed = {(status, claim_id) for status, user, claim_id in results if user == "keyed"}
    assert len(keyed) == 1  # every retry of the key got the first answer (the same claim)
    row = await pool.fetchrow(
        """SELECT c.total_quantity - c.quantity AS consumed,
                  (SELECT count(*) FROM claim WHERE coupon_id = c.id) AS claims,
                  (SELECT count(*) FROM claim_event
                    WHERE coupon_id = c.id AND kind = 'granted') AS ledger,
                  (SELECT max(n) FROM (SELECT count(*) AS n FROM claim WHERE coupon_id = c.id
                    GROUP BY user_id) AS per_user) AS most
             FROM coupon c WHERE c.id = $1""",
        coupon_id,
    )
    assert row is not None
    assert row["consumed"] == row["claims"] == row["ledger"] == quantity  # 200 users x 2 > 300
    assert row["most"] <= limit
    granted = {claim_id for status, _, claim_id in results if status == 201}
    stored = {str(r["id"]) for r in await pool.fetch("SELECT id FROM claim")}
    assert granted == stored
