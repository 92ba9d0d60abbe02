"""The domain: what a coupon and a grant are, and every way giving one can fail."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID


@dataclass(frozen=True, slots=True)
class Coupon:
    """A coupon as stored: `quantity` is what is left to give."""

    id: UUID
    name: str | None
    type: str
    quantity: int


@dataclass(frozen=True, slots=True)
class NewCoupon:
    """What a shop asks for when it creates a coupon."""

    id: UUID
    name: str | None
    type: str
    quantity: int


@dataclass(frozen=True, slots=True)
class Grant:
    """One coupon given to one user, as committed; `quantity_left` is after this grant."""

    coupon_id: UUID
    user_id: str
    quantity_left: int


class CouponError(Exception):
    """Base of every expected failure; the API maps each subclass to one HTTP status."""


class CouponNotFound(CouponError):
    """No coupon has this id."""

    def __init__(self, coupon_id: UUID) -> None:
        super().__init__(f"coupon {coupon_id} not found")


class SoldOut(CouponError):
    """The coupon has nothing left to give."""

    def __init__(self, coupon_id: UUID) -> None:
        super().__init__(f"coupon {coupon_id} has run out")


class DuplicateCoupon(CouponError):
    """A coupon with this id already exists."""

    def __init__(self, coupon_id: UUID) -> None:
        super().__init__(f"coupon {coupon_id} already exists")


class StrategyDisabled(CouponError):
    """The operator switched this way of giving off (the unsafe naive one)."""

    def __init__(self, strategy: str) -> None:
        super().__init__(f"the '{strategy}' strategy is disabled on this server")


class DatabaseUnavailable(CouponError):
    """PostgreSQL cannot be reached right now; the client should retry shortly."""
