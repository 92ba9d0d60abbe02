"""The atomic and group-commit strategies against PostgreSQL: outcomes, order, ledger, failures."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest

from couponapi.domain.errors import CouponNotFound, DatabaseUnavailable, SoldOut
from couponapi.strategies import batcher
from couponapi.strategies import give_atomic as atomic
from couponapi.strategies import give_group_commit as group_commit
from couponapi.strategies.batcher import BatchFailed
from tests.support import LedgerState, ledger_state

POISON_TRIGGER = """
CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.userid = 'poison' THEN
        RAISE EXCEPTION 'injected failure' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_poison BEFORE INSERT ON coupon_given_events
    FOR EACH ROW EXECUTE FUNCTION refuse_poison();
"""


async def new_coupon(pool: asyncpg.Pool, quantity: int) -> UUID:
    coupon_id = uuid4()
    await pool.execute(
        "INSERT INTO coupon (id, type, quantity) VALUES ($1, 'x', $2)", coupon_id, quantity
    )
    return coupon_id


async def test_the_batch_function_grants_in_order_until_sold_out(pool: asyncpg.Pool) -> None:
    coupon_id = await new_coupon(pool, 3)
    rows = await pool.fetch(
        "SELECT * FROM give_coupons_to_users($1, $2)", coupon_id, ["a", "b", "a", "c", "d"]
    )
    assert [tuple(r) for r in rows] == [
        ("granted", 2),
        ("granted", 1),
        ("granted", 0),
        ("sold_out", 0),
        ("sold_out", 0),
    ]
    ledger = await pool.fetch(
        "SELECT userid, newquantity FROM coupon_given_events ORDER BY id", timeout=5
    )
    assert [tuple(r) for r in ledger] == [("a", 2), ("b", 1), ("a", 0)]
    assert await ledger_state(pool, coupon_id) == LedgerState(0, 3, 2)
    sold_out = await pool.fetch("SELECT * FROM give_coupons_to_users($1, $2)", coupon_id, ["e"])
    assert [tuple(r) for r in sold_out] == [("sold_out", 0)]
    unknown = await pool.fetch("SELECT * FROM give_coupons_to_users($1, $2)", uuid4(), ["e", "f"])
    assert [tuple(r) for r in unknown] == [("not_found", None), ("not_found", None)]
    other = await new_coupon(pool, 5)
    assert await pool.fetch("SELECT * FROM give_coupons_to_users($1, NULL)", other) == []
    assert await ledger_state(pool, other) == LedgerState(5, 0, 0)


async def test_atomic_grants_refuses_and_tells_unknown_from_sold_out(pool: asyncpg.Pool) -> None:
    coupon_id = await new_coupon(pool, 2)
    grants = [await atomic.give(pool, coupon_id, user) for user in ("a", "b")]
    assert [g.quantity_left for g in grants] == [1, 0]
    with pytest.raises(SoldOut):
        await atomic.give(pool, coupon_id, "c")
    with pytest.raises(CouponNotFound):
        await atomic.give(pool, uuid4(), "c")
    assert await ledger_state(pool, coupon_id) == LedgerState(0, 2, 2)


async def test_atomic_under_parallel_connections_never_oversells(pool: asyncpg.Pool) -> None:
    coupon_id = await new_coupon(pool, 50)
    outcomes = await asyncio.gather(
        *(atomic.give(pool, coupon_id, f"u{n}") for n in range(200)), return_exceptions=True
    )
    assert sum(not isinstance(o, Exception) for o in outcomes) == 50
    assert all(isinstance(o, SoldOut) for o in outcomes if isinstance(o, Exception))
    assert await ledger_state(pool, coupon_id) == LedgerState(0, 50, 50)


async def test_group_commit_serves_arrival_order_and_answers_after_commit(
    pool: asyncpg.Pool,
) -> None:
    coupon_id = await new_coupon(pool, 100)
    outcomes = await asyncio.gather(
        *(group_commit.give(pool, coupon_id, f"u{n}") for n in range(300)), return_exceptions=True
    )
    granted = [o for o in outcomes[:100] if not isinstance(o, BaseException)]
    assert [g.user_id for g in granted] == [f"u{n}" for n in range(100)]
    assert sorted(g.quantity_left for g in granted) == list(range(100))
    assert all(isinstance(o, SoldOut) for o in outcomes[100:])
    assert await ledger_state(pool, coupon_id) == LedgerState(0, 100, 100)
    with pytest.raises(CouponNotFound):
        await group_commit.give(pool, uuid4(), "late")


async def test_a_failing_batch_fails_only_its_claims(pool: asyncpg.Pool) -> None:
    await pool.execute(POISON_TRIGGER)
    coupon_id = await new_coupon(pool, 1_000)
    users = [f"u{n}" for n in range(2 * batcher.MAX_BATCH)]
    users[batcher.MAX_BATCH + 5] = "poison"  # in the second batch
    outcomes = await asyncio.gather(
        *(group_commit.give(pool, coupon_id, u) for u in users), return_exceptions=True
    )
    first, second = outcomes[: batcher.MAX_BATCH], outcomes[batcher.MAX_BATCH :]
    assert not any(isinstance(o, BaseException) for o in first)
    assert all(isinstance(o, DatabaseUnavailable) for o in second)
    assert isinstance(second[0], DatabaseUnavailable)
    assert isinstance(second[0].__cause__, BatchFailed)
    assert isinstance(second[0].__cause__.__cause__, asyncpg.CheckViolationError)
    # Nothing of the failed batch was written; the good one is whole.
    state = await ledger_state(pool, coupon_id)
    size = batcher.MAX_BATCH
    assert state == LedgerState(1_000 - size, size, size)
    after = await group_commit.give(pool, coupon_id, "next")
    assert after.quantity_left == 1_000 - batcher.MAX_BATCH - 1


@pytest.mark.parametrize("path", ["give-atomic", "give-group-commit"])
async def test_the_v1_routes_keep_the_wire_format(
    client: httpx.AsyncClient, pool: asyncpg.Pool, path: str
) -> None:
    coupon_id = await new_coupon(pool, 1)
    url = f"/coupon/api/v1/{path}/{coupon_id}"
    given = await client.post(url, headers={"X-User-Id": "alice"})
    assert given.status_code == 200
    assert given.json() == "Coupon Given To User alice!"
    assert (given.headers["x-user-id"], given.headers["x-quantity-left"]) == ("alice", "0")
    refused = await client.post(url, json={"userId": "bob"})
    assert refused.status_code == 409
    assert refused.json() == {"code": 409, "errorDescription": f"coupon {coupon_id} has run out"}
    unknown = await client.post(f"/coupon/api/v1/{path}/{uuid4()}")
    assert unknown.status_code == 404
    assert (await client.post(f"/coupon/api/v1/{path}/nope")).status_code == 400


@pytest.mark.parametrize("strategy", [atomic, group_commit])
async def test_sold_out_is_refused_without_waiting_for_the_row_lock(
    pool: asyncpg.Pool, strategy: Any
) -> None:
    coupon_id = await new_coupon(pool, 0)
    async with pool.acquire() as holder, holder.transaction():
        # Someone holds the coupon's row lock (as a locking giver would): a refusal that took
        # the lock would wait here until the 5 s guard; a lock-free one answers at once.
        await holder.execute("SELECT 1 FROM coupon WHERE id = $1 FOR UPDATE", coupon_id)
        with pytest.raises(SoldOut):
            await asyncio.wait_for(strategy.give(pool, coupon_id, "late"), timeout=5)
    assert await ledger_state(pool, coupon_id) == LedgerState(0, 0, 0)
