"""The current API's (v2) wire types: snake_case JSON, timestamps ISO 8601 in UTC.

A claim goes out as the domain's own `Claim` (msgspec encodes the dataclass as it is); a
coupon as `CouponPublic`, which names its counts for clients. Also here: what the routes'
OpenAPI operations share (tags, the page parameters, the common refusals)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec
from msgspec import UNSET, Meta, UnsetType

from couponapi.api.inputs import CURSOR_PATTERN, MAX_PAGE, PRINTABLE, STORABLE
from couponapi.api.v2.problems import Problem
from couponapi.domain.claims import Claim
from couponapi.domain.codes import TYPED_PATTERN
from couponapi.domain.coupons import Coupon

TAGS = ("v2 (current API)",)
PAGE = (
    ("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}, "Page size (default 50)."),
    ("cursor", {"type": "string", "pattern": CURSOR_PATTERN}, "The previous page's next_cursor."),
)
AUTH = {
    401: (Problem, "No credential (WWW-Authenticate says which scheme)."),
    403: (Problem, "The credential is not valid, or not the admin's."),
}
# Routes any valid credential may call (a user token acting for itself).
SIGNED = {
    401: (Problem, "No credential: a user token, a server key or the admin token."),
    403: (Problem, "The credential is not valid, or does not allow this."),
}
INVALID = (Problem, "Malformed id, body or query parameter.")
UNKNOWN = (Problem, "No coupon with this id.")

Quantity = Annotated[int, Meta(ge=0, le=2_147_483_647)]
Limit = Annotated[int, Meta(ge=1, le=2_147_483_647)]
Instant = Annotated[datetime, Meta(tz=True)]  # an offset is required: no local times
MAX_HOLD_S = 30 * 24 * 3600  # 30 days, as the coupon_hold_seconds_range CHECK says
HoldSeconds = Annotated[
    int,
    Meta(
        ge=1,
        le=MAX_HOLD_S,
        description="Seconds a claim holds its unit; a claim not redeemed by then expires "
        "and the unit is back. null: claims never expire.",
    ),
]
Name = Annotated[str, Meta(min_length=1, max_length=200, pattern=STORABLE)]
Kind = Annotated[str, Meta(min_length=1, max_length=100, pattern=STORABLE)]
# Printable: a NUL would fail in PostgreSQL, and with group commit take the whole
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
    hold_seconds: HoldSeconds | None = None
    id: UUID | None = None


class CouponUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """A change; absent fields stay. `null` clears starts_at or ends_at, or makes claims
    never expire (hold_seconds). A hold applies to claims granted after the change."""

    quantity: Quantity | UnsetType = UNSET
    per_user_limit: Limit | UnsetType = UNSET
    starts_at: Instant | UnsetType | None = UNSET
    ends_at: Instant | UnsetType | None = UNSET
    paused: bool | UnsetType = UNSET
    hold_seconds: HoldSeconds | UnsetType | None = UNSET


class CouponPublic(msgspec.Struct):
    """A coupon: `quantity` in all, `remaining` to claim as of now, `claimed` live,
    `redeemed` spent; `hold_seconds` how long a claim holds its unit (null: for ever)."""

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
    hold_seconds: int | None

    @classmethod
    def of(cls, coupon: Coupon) -> CouponPublic:
        """The wire form of a coupon with its counts."""
        return cls(
            id=coupon.id, name=coupon.name, type=coupon.type, quantity=coupon.total_quantity,
            remaining=coupon.remaining, claimed=coupon.claimed, redeemed=coupon.redeemed,
            per_user_limit=coupon.per_user_limit, starts_at=coupon.starts_at,
            ends_at=coupon.ends_at, paused=coupon.paused, created_at=coupon.created_at,
            hold_seconds=coupon.hold_seconds,
        )  # fmt: skip


class CouponPage(msgspec.Struct):
    """One page of coupons; pass `next_cursor` as `?cursor=` for the next (null: the end)."""

    items: list[CouponPublic]
    next_cursor: str | None


class ClaimCreate(msgspec.Struct, forbid_unknown_fields=True):
    """Who claims: required with a server key or the admin credential; with a user token
    the body may be left out, and a user_id must be the token's own."""

    user_id: UserId | UnsetType = UNSET


class ClaimPage(msgspec.Struct):
    """One page of claims; pass `next_cursor` as `?cursor=` for the next (null: the end)."""

    items: list[Claim]
    next_cursor: str | None


class RedeemRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The code to spend (case, dashes and spaces do not matter)."""

    code: Annotated[str, Meta(min_length=1, max_length=64, pattern=TYPED_PATTERN)]
