"""The transaction with `SELECT ... FOR UPDATE`: the original's give-transaction route.

Isolation: READ COMMITTED, one transaction per grant.
Locks: the coupon's row lock, taken by the first statement and held until commit, so all
givers of one coupon queue at that row and each reads the quantity its predecessor committed.
It cannot oversell (check and decrement happen under the same lock) and cannot deadlock
(one row lock per transaction, so no cycle).
How it fails: unknown coupon -> CouponNotFound; nothing left -> SoldOut, and the transaction
rolls back having written nothing. Slow under a crowd: four round trips while holding the
hottest lock in the database.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from couponapi.db.queries import query
from couponapi.domain.claims import Grant
from couponapi.domain.errors import CouponNotFound, SoldOut


async def give(pool: asyncpg.Pool, coupon_id: UUID, user_id: str) -> Grant:
    """Lock the row, check, decrement, log, commit."""
    async with pool.acquire() as connection, connection.transaction():
        # FOR UPDATE: later givers wait here until we commit, then read our new quantity.
        quantity: int | None = await connection.fetchval(query("lock_quantity"), coupon_id)
        if quantity is None:
            raise CouponNotFound(coupon_id)
        if quantity < 1:
            raise SoldOut(coupon_id)
        left: int = await connection.fetchval(query("decrement_quantity"), coupon_id)
        await connection.execute(query("insert_given_event"), coupon_id, user_id, left)
    return Grant(coupon_id=coupon_id, user_id=user_id, quantity_left=left)
