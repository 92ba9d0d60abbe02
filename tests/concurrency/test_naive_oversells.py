"""The original's lesson, proven step by step: read-then-write without a lock oversells.

Two givers on their own connections are interleaved by hand: both read, then both write.
No timing luck is involved, so the test is deterministic. The same interleaving against the
locking strategy is impossible: the second reader blocks at FOR UPDATE (shown below too).
"""

from __future__ import annotations

import asyncio
from uuid import uuid4

import asyncpg
import pytest

from couponapi.domain.errors import SoldOut
from couponapi.strategies import give_locking as locking
from couponapi.strategies import give_naive as naive
from tests.support import ledger_state

pytestmark = pytest.mark.concurrency


async def test_two_interleaved_naive_givers_oversell_the_last_coupon(pool: asyncpg.Pool) -> None:
    coupon_id = uuid4()
    await pool.execute("INSERT INTO coupon (id, type, quantity) VALUES ($1, 'x', 1)", coupon_id)
    async with pool.acquire() as alice, pool.acquire() as bob:
        seen_by_alice = await naive.read_quantity(alice, coupon_id)
        seen_by_bob = await naive.read_quantity(bob, coupon_id)
        assert seen_by_alice == seen_by_bob == 1
        await naive.write_grant(alice, coupon_id, "alice", seen_by_alice)
        await naive.write_grant(bob, coupon_id, "bob", seen_by_bob)
    state = await ledger_state(pool, coupon_id)
    # One coupon existed; two users got it; the quantity says only one was used.
    assert (state.quantity_left, state.ledger_rows) == (0, 2)
    with pytest.raises(SoldOut):
        await naive.read_quantity(pool, coupon_id)


async def test_lost_update_in_the_middle_of_a_run(pool: asyncpg.Pool) -> None:
    coupon_id = uuid4()
    await pool.execute("INSERT INTO coupon (id, type, quantity) VALUES ($1, 'x', 10)", coupon_id)
    async with pool.acquire() as first, pool.acquire() as second:
        seen = [await naive.read_quantity(c, coupon_id) for c in (first, second)]
        await naive.write_grant(first, coupon_id, "a", seen[0])
        await naive.write_grant(second, coupon_id, "b", seen[1])
    state = await ledger_state(pool, coupon_id)
    # Two grants, one decrement: 10 - 9 = 1 consumed, 2 given.
    assert (state.quantity_left, state.ledger_rows) == (9, 2)


async def test_the_locking_strategy_makes_the_second_giver_wait(pool: asyncpg.Pool) -> None:
    coupon_id = uuid4()
    await pool.execute("INSERT INTO coupon (id, type, quantity) VALUES ($1, 'x', 1)", coupon_id)
    async with pool.acquire() as holder:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("SELECT quantity FROM coupon WHERE id = $1 FOR UPDATE", coupon_id)
        waiting = asyncio.create_task(locking.give(pool, coupon_id, "bob"))
        await asyncio.sleep(0.3)
        assert not waiting.done()  # blocked at FOR UPDATE behind the holder
        await holder.execute("UPDATE coupon SET quantity = 0 WHERE id = $1", coupon_id)
        await transaction.commit()
    with pytest.raises(SoldOut):
        await waiting  # it then reads the committed 0: no oversell
    assert (await ledger_state(pool, coupon_id)).ledger_rows == 0
