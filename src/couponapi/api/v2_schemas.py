"""The current API's (v2) wire types: snake_case JSON, timestamps ISO 8601 in UTC."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec
from msgspec import UNSET, Meta, UnsetType

from couponapi.api.v1_schemas import PRINTABLE
from couponapi.claims import Claim
from couponapi.coupons_v2 import CouponDetails

Quantity = Annotated[int, Meta(ge=0, le=2_147_483_647)]
Limit = Annotated[int, Meta(ge=1, le=2_147_483_647)]
Instant = Annotated[datetime, Meta(tz=True)]  # an offset is required: no local times
Name = Annotated[str, Meta(min_length=1, max_length=200)]
Kind = Annotated[str, Meta(min_length=1, max_length=100)]
# Printable (issue 6): a NUL would fail in PostgreSQL, and with group commit take the whole
# batch down with it; refused here with 422 before it can reach a batch.
UserId = Annotated[str, Meta(min_length=1, max_length=128, pattern=PRINTABLE)]


class CouponCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A new coupon: `quantity` in all, at most `per_user_limit` live claims per user."""

    name: Name
    type: Kind
    quantity: Quantity
    per_user_limit: Limit = 1
    starts_at: Instant | None = None
    ends_at: Instant | None = None
    id: UUID | None = None


class CouponUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """A change; absent fields stay. `null` clears starts_at or ends_at."""

    quantity: Quantity | UnsetType = UNSET
    per_user_limit: Limit | UnsetType = UNSET
    starts_at: Instant | UnsetType | None = UNSET
    ends_at: Instant | UnsetType | None = UNSET
    paused: bool | UnsetType = UNSET


class CouponPublic(msgspec.Struct):
    """A coupon: `quantity` in all, `remaining` to claim, `claimed` live, `redeemed` spent."""

    id: UUID
    name: str | None
    type: str
    quantity: int
    remaining: int
    claimed: int
    redeemed: int
    per_user_limit: int
    starts_at: datetime | None
    ends_at: datetime | None
    paused: bool
    created_at: datetime

    @classmethod
    def of(cls, coupon: CouponDetails) -> CouponPublic:
        """The wire form of a coupon with its counts."""
        return cls(
            id=coupon.id, name=coupon.name, type=coupon.type, quantity=coupon.total_quantity,
            remaining=coupon.remaining, claimed=coupon.claimed, redeemed=coupon.redeemed,
            per_user_limit=coupon.per_user_limit, starts_at=coupon.starts_at,
            ends_at=coupon.ends_at, paused=coupon.paused, created_at=coupon.created_at,
        )  # fmt: skip


class CouponPage(msgspec.Struct):
    """One page of coupons; pass `next_cursor` as `?cursor=` for the next (null: the end)."""

    items: list[CouponPublic]
    next_cursor: str | None


class ClaimCreate(msgspec.Struct, forbid_unknown_fields=True):
    """Who claims."""

    user_id: UserId


class ClaimPublic(msgspec.Struct):
    """A claim; `code` is what the user types to redeem it."""

    id: UUID
    coupon_id: UUID
    user_id: str
    code: str
    status: str
    claimed_at: datetime
    released_at: datetime | None = None
    redeemed_at: datetime | None = None

    @classmethod
    def of(cls, claim: Claim) -> ClaimPublic:
        """The wire form of a claim."""
        return cls(
            id=claim.id, coupon_id=claim.coupon_id, user_id=claim.user_id, code=claim.code,
            status=claim.status, claimed_at=claim.claimed_at, released_at=claim.released_at,
            redeemed_at=claim.redeemed_at,
        )  # fmt: skip


class ClaimPage(msgspec.Struct):
    """One page of claims; pass `next_cursor` as `?cursor=` for the next (null: the end)."""

    items: list[ClaimPublic]
    next_cursor: str | None


class RedeemRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The code to spend (case, dashes and spaces do not matter)."""

    code: Annotated[str, Meta(min_length=1, max_length=64)]
