"""The ways to claim a coupon in the current API (v2); `CLAIM_STRATEGIES` maps a name to one.

Only `function` for now: the rules (window, pause, quantity, per-user limit, idempotency)
live once, in claim_coupons_v1. A Python-side `locking` twin would write them twice.
A strategy takes the pool, the coupon and one ClaimRequest, and returns a Claimed or raises
the refusal as a CouponError (see couponapi.claims.claim_result).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from uuid import UUID

import asyncpg

from couponapi.claims import Claimed, ClaimRequest
from couponapi.strategies import claim_function, claim_group_commit

ClaimStrategy = Callable[[asyncpg.Pool, UUID, ClaimRequest], Awaitable[Claimed]]

CLAIM_STRATEGIES: dict[str, ClaimStrategy] = {
    "function": claim_function.claim,
    "group_commit": claim_group_commit.claim,
}
