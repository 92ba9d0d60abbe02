"""The naive read-then-write: the original's "first solution that comes to mind". UNSAFE.

Isolation: none worth the name. Each statement autocommits on its own, so between the read
and the write other givers run freely.
Locks: none held across steps; the UPDATE takes the row lock only for its own instant.
How it fails: two givers read the same quantity q, both pass the check, both write q - 1:
one decrement is lost and both users get a coupon. The quantity column never goes below
zero (it is overwritten with an absolute value), so the oversell shows as more ledger rows
than the quantity that was consumed. It is kept to demonstrate exactly that, and can be
switched off (`COUPONAPI_ENABLE_NAIVE=false`).
"""

from __future__ import annotations

from uuid import UUID

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from couponapi.db.queries import query
from couponapi.domain.claims import Grant
from couponapi.domain.errors import CouponNotFound, SoldOut

Executor = asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy


async def read_quantity(db: Executor, coupon_id: UUID) -> int:
    """Step 1: read what is left (no lock) and check it; raises when unknown or sold out."""
    quantity: int | None = await db.fetchval(query("read_quantity"), coupon_id)
    if quantity is None:
        raise CouponNotFound(coupon_id)
    if quantity < 1:
        raise SoldOut(coupon_id)
    return quantity


async def write_grant(db: Executor, coupon_id: UUID, user_id: str, seen: int) -> Grant:
    """Step 2: write back `seen - 1` and log the grant, trusting a read that may be stale."""
    await db.execute(query("write_quantity"), coupon_id, seen - 1)
    await db.execute(query("insert_given_event"), coupon_id, user_id, seen - 1)
    return Grant(coupon_id=coupon_id, user_id=user_id, quantity_left=seen - 1)


async def give(pool: asyncpg.Pool, coupon_id: UUID, user_id: str) -> Grant:
    """Read, check, write, log: four round trips with nothing holding them together."""
    seen = await read_quantity(pool, coupon_id)
    return await write_grant(pool, coupon_id, user_id, seen)
