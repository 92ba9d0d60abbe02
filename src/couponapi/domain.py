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

    # True when this refusal is the stored first answer to an idempotency key, sent again.
    replayed = False


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


# v2 (the current API): refusals of claims, releases, redemptions and coupon changes.


class LimitReached(CouponError):
    """The user already holds as many live claims of this coupon as its per-user limit."""


class NotActive(CouponError):
    """The coupon is paused, or the claim came outside [starts_at, ends_at)."""


class IdempotencyKeyConflict(CouponError):
    """The Idempotency-Key was first used for another request."""


class ClaimNotFound(CouponError):
    """No claim has this id, or no claim has this code."""


class AlreadyReleased(CouponError):
    """The claim was given back already; it can be neither released nor redeemed."""


class AlreadyRedeemed(CouponError):
    """The claim's code was spent already; it can be neither released nor redeemed again."""


class QuantityBelowClaimed(CouponError):
    """A coupon's quantity cannot go below what is already claimed."""


class InvalidCoupon(CouponError):
    """The coupon asked for breaks a rule of its own (e.g. a window that ends before it starts)."""
