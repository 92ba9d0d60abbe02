"""Service functions: the one place routes call, thin orchestration over SQL and strategies.

Each takes the pool as an argument and returns domain objects or raises a CouponError.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from couponapi.db.queries import query
from couponapi.domain import Coupon, CouponNotFound, DuplicateCoupon, Grant, NewCoupon
from couponapi.strategies import STRATEGIES


def _coupon(row: asyncpg.Record) -> Coupon:
    return Coupon(id=row["id"], name=row["name"], type=row["type"], quantity=row["quantity"])


async def create_coupon(pool: asyncpg.Pool, new: NewCoupon) -> Coupon:
    """Insert a coupon; DuplicateCoupon when the id is taken."""
    try:
        row = await pool.fetchrow(query("insert_coupon"), new.id, new.name, new.type, new.quantity)
    except asyncpg.UniqueViolationError as error:
        raise DuplicateCoupon(new.id) from error
    assert row is not None
    return _coupon(row)


async def get_coupon(pool: asyncpg.Pool, coupon_id: UUID) -> Coupon:
    """One coupon; CouponNotFound when there is none with this id."""
    row = await pool.fetchrow(query("get_coupon"), coupon_id)
    if row is None:
        raise CouponNotFound(coupon_id)
    return _coupon(row)


async def list_coupons(pool: asyncpg.Pool) -> list[Coupon]:
    """Every coupon."""
    return [_coupon(row) for row in await pool.fetch(query("list_coupons"))]


async def give(pool: asyncpg.Pool, strategy: str, coupon_id: UUID, user_id: str) -> Grant:
    """Give one coupon to `user_id` the way `strategy` does it."""
    return await STRATEGIES[strategy](pool, coupon_id, user_id)
