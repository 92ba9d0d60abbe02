"""v2 coupons: create, read, list and change, with their counts.

Service functions like service.py's: the pool is passed in, domain objects come back, and
every refusal is a CouponError. The rules live in PostgreSQL (migration 0002): a window that
ends before it starts and a quantity below what is claimed are refused by CHECK constraints,
which this module turns into domain errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import asyncpg

from couponapi.db.queries import query
from couponapi.domain import (
    CouponNotFound,
    DuplicateCoupon,
    InvalidCoupon,
    QuantityBelowClaimed,
)

# Before every row: where a first page starts.
START = (datetime(1, 1, 1, tzinfo=UTC), UUID(int=0))


@dataclass(frozen=True, slots=True)
class CouponDetails:
    """A coupon with its counts: claimed = total - remaining; redeemed counts spent codes."""

    id: UUID
    name: str | None
    type: str
    total_quantity: int
    remaining: int
    per_user_limit: int
    starts_at: datetime | None
    ends_at: datetime | None
    paused: bool
    created_at: datetime
    redeemed: int

    @property
    def claimed(self) -> int:
        """What is held: total - remaining (live v2 claims, plus any v1 grants)."""
        return self.total_quantity - self.remaining


@dataclass(frozen=True, slots=True)
class NewCouponV2:
    """What an admin asks for when creating a coupon."""

    id: UUID
    name: str
    type: str
    quantity: int
    per_user_limit: int = 1
    starts_at: datetime | None = None
    ends_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CouponChange:
    """A change to a coupon; None (or `set_*` False for the window) keeps the current value."""

    quantity: int | None = None
    set_starts_at: bool = False
    starts_at: datetime | None = None
    set_ends_at: bool = False
    ends_at: datetime | None = None
    paused: bool | None = None
    per_user_limit: int | None = None


def _details(row: asyncpg.Record) -> CouponDetails:
    return CouponDetails(
        id=row["id"],
        name=row["name"],
        type=row["type"],
        total_quantity=row["total_quantity"],
        remaining=row["quantity"],
        per_user_limit=row["per_user_limit"],
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        paused=row["paused"],
        created_at=row["created_at"],
        redeemed=row["redeemed"],
    )


def _window_error(error: asyncpg.CheckViolationError) -> InvalidCoupon:
    if error.constraint_name == "coupon_window_ordered":
        return InvalidCoupon("ends_at must be after starts_at")
    return InvalidCoupon(f"invalid coupon: {error.constraint_name}")


async def create_coupon(pool: asyncpg.Pool, new: NewCouponV2) -> CouponDetails:
    """Insert a coupon; DuplicateCoupon when the id is taken, InvalidCoupon for a bad window."""
    try:
        row = await pool.fetchrow(
            query("insert_coupon_v2"),
            new.id, new.name, new.type, new.quantity, new.per_user_limit,
            new.starts_at, new.ends_at,
        )  # fmt: skip
    except asyncpg.UniqueViolationError as error:
        raise DuplicateCoupon(new.id) from error
    except asyncpg.CheckViolationError as error:
        raise _window_error(error) from error
    assert row is not None
    return _details(row)


async def get_coupon(pool: asyncpg.Pool, coupon_id: UUID) -> CouponDetails:
    """One coupon with its counts; CouponNotFound when there is none."""
    row = await pool.fetchrow(query("get_coupon_v2"), coupon_id)
    if row is None:
        raise CouponNotFound(coupon_id)
    return _details(row)


async def list_coupons(
    pool: asyncpg.Pool, after: tuple[datetime, UUID] | None, limit: int
) -> list[CouponDetails]:
    """Up to `limit` coupons created after the cursor `after` (created_at, id), oldest first."""
    at, last_id = after or START
    return [_details(r) for r in await pool.fetch(query("list_coupons_v2"), at, last_id, limit)]


async def update_coupon(pool: asyncpg.Pool, coupon_id: UUID, change: CouponChange) -> CouponDetails:
    """Apply `change` under the coupon's row lock; QuantityBelowClaimed, InvalidCoupon, 404."""
    try:
        row = await pool.fetchrow(
            query("update_coupon_v2"),
            coupon_id, change.quantity, change.set_starts_at, change.starts_at,
            change.set_ends_at, change.ends_at, change.paused, change.per_user_limit,
        )  # fmt: skip
    except asyncpg.CheckViolationError as error:
        if error.constraint_name == "coupon_quantity_not_negative":
            raise QuantityBelowClaimed(
                f"coupon {coupon_id}: quantity {change.quantity} is below what is claimed"
            ) from error
        raise _window_error(error) from error
    if row is None:
        raise CouponNotFound(coupon_id)
    return _details(row)
