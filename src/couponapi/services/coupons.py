"""Coupons, for both APIs: create, read, list and change, with their counts.

The pool is passed in, domain objects come back, and every refusal is a CouponError. The
rules live in PostgreSQL: a window that ends before it starts and a quantity below what is
claimed are refused by CHECK constraints, which this module turns into domain errors.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from couponapi.db.queries import START, Keyset, query
from couponapi.domain.coupons import Coupon, CouponChange, NewCoupon
from couponapi.domain.errors import (
    CouponNotFound,
    DuplicateCoupon,
    HoldWouldShorten,
    InvalidCoupon,
    QuantityBelowClaimed,
)


def _window_error(error: asyncpg.CheckViolationError) -> InvalidCoupon:
    if error.constraint_name == "coupon_window_ordered":
        return InvalidCoupon("ends_at must be after starts_at")
    return InvalidCoupon(f"invalid coupon: {error.constraint_name}")


async def create_coupon(pool: asyncpg.Pool, new: NewCoupon) -> Coupon:
    """Insert a coupon; DuplicateCoupon when the id is taken, InvalidCoupon for a bad window."""
    try:
        row = await pool.fetchrow(
            query("insert_coupon"),
            new.id, new.name, new.type, new.quantity, new.per_user_limit,
            new.starts_at, new.ends_at, new.hold_seconds,
        )  # fmt: skip
    except asyncpg.UniqueViolationError as error:
        raise DuplicateCoupon(new.id) from error
    except asyncpg.CheckViolationError as error:
        raise _window_error(error) from error
    assert row is not None
    return Coupon(**row)


async def get_coupon(pool: asyncpg.Pool, coupon_id: UUID) -> Coupon:
    """One coupon with its counts; CouponNotFound when there is none."""
    row = await pool.fetchrow(query("get_coupon"), coupon_id)
    if row is None:
        raise CouponNotFound(coupon_id)
    return Coupon(**row)


async def all_coupons(pool: asyncpg.Pool) -> list[Coupon]:
    """Every coupon, in id order (v1's /all: the original had no pages)."""
    return [Coupon(**row) for row in await pool.fetch(query("all_coupons"))]


async def list_coupons(pool: asyncpg.Pool, after: Keyset | None, limit: int) -> list[Coupon]:
    """Up to `limit` coupons created after the cursor `after` (created_at, id), oldest first."""
    at, last_id = after or START
    return [Coupon(**row) for row in await pool.fetch(query("list_coupons"), at, last_id, limit)]


async def update_coupon(pool: asyncpg.Pool, coupon_id: UUID, change: CouponChange) -> Coupon:
    """Apply `change` under the coupon's row lock (change_coupon_v1), then read the coupon back;
    QuantityBelowClaimed, HoldWouldShorten, InvalidCoupon, CouponNotFound. A refusal changes
    nothing."""
    try:
        outcome = await pool.fetchval(
            query("change_coupon"),
            coupon_id, change.quantity, change.set_starts_at, change.starts_at,
            change.set_ends_at, change.ends_at, change.paused, change.per_user_limit,
            change.set_hold_seconds, change.hold_seconds,
        )  # fmt: skip
    except asyncpg.CheckViolationError as error:
        if error.constraint_name == "coupon_quantity_not_negative":
            raise QuantityBelowClaimed(
                f"coupon {coupon_id}: quantity {change.quantity} is below what is claimed"
            ) from error
        raise _window_error(error) from error
    if outcome == "not_found":
        raise CouponNotFound(coupon_id)
    if outcome == "hold_shortens":
        raise HoldWouldShorten(
            f"coupon {coupon_id}: a live claim holds longer than {change.hold_seconds} s from "
            "now; holds already granted are never cut short"
        )
    return await get_coupon(pool, coupon_id)
