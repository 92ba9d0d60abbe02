"""What a coupon is, what a shop asks for when it creates one, and what a change may touch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID


@dataclass(frozen=True, slots=True)
class Coupon:
    """A coupon with its counts: `remaining` is what is left to give as of the read (a hold
    past its expires_at is back in it), `redeemed` spent codes; `hold_seconds` how long a
    claim holds its unit (None: for ever).

    Both APIs read this one type: v1 shows `remaining` as its `Quantity`."""

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
    hold_seconds: int | None
    redeemed: int

    @property
    def claimed(self) -> int:
        """What is held: total - remaining (live v2 claims, plus any v1 grants)."""
        return self.total_quantity - self.remaining


@dataclass(frozen=True, slots=True)
class NewCoupon:
    """What a shop asks for when it creates a coupon (v1 sends only id, name, type, quantity)."""

    id: UUID
    name: str | None
    type: str
    quantity: int
    per_user_limit: int = 1
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    hold_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class CouponChange:
    """A change to a coupon; None (or `set_*` False for the window and the hold) keeps the
    current value. A new hold applies to claims granted after it: a hold already granted
    keeps its expires_at, and a shorter hold is refused while a live claim would outlast it."""

    quantity: int | None = None
    set_starts_at: bool = False
    starts_at: datetime | None = None
    set_ends_at: bool = False
    ends_at: datetime | None = None
    paused: bool | None = None
    per_user_limit: int | None = None
    set_hold_seconds: bool = False
    hold_seconds: int | None = None
