"""v2 claims one at a time with claim_coupons_v2 (claim_batch_v1 on one coupon, arrays of one).

Isolation: READ COMMITTED; the call is one statement, so one implicit transaction.
Locks: the coupon row (FOR NO KEY UPDATE), then the idempotency key, then claim rows (the
coupon's due holds it expires, SKIP LOCKED, then the new claim row), always in that order,
held to commit: claimers of one coupon queue at its row, so neither the quantity nor the
per-user limit can be exceeded, and no deadlock (see the comments at the locks in
schema.sql). One round trip per claim.
How it fails: every refusal is a row of the function (outcome), mapped by
couponapi.domain.claims.claim_result to the CouponError raised here; nothing is written for a
refusal except its stored answer when an Idempotency-Key came with it. A code that collides
with an existing one (60 random bits: about 1 in 10^12 per claim while a million codes exist)
rolls the whole call back, and it is retried once with a fresh code.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import asyncpg

from couponapi.db.queries import query
from couponapi.domain.claims import (
    Claimed,
    ClaimRequest,
    claim_arguments,
    claim_result,
    claimed_or_raise,
)
from couponapi.domain.errors import CouponError


async def claim_all(
    pool: asyncpg.Pool, coupon_id: UUID, requests: Sequence[ClaimRequest]
) -> list[Claimed | CouponError]:
    """One call of claim_coupons_v2 for `requests`, in order: one result each. A code
    collision is retried once."""
    for attempt in (1, 2):
        try:
            rows = await pool.fetch(query("claim_coupons"), *claim_arguments(coupon_id, requests))
            break
        except asyncpg.UniqueViolationError as error:
            if error.constraint_name != "claim_code_unique" or attempt == 2:
                raise
    return [claim_result(coupon_id, row["outcome"], row["body"]) for row in rows]


async def claim(pool: asyncpg.Pool, coupon_id: UUID, request: ClaimRequest) -> Claimed:
    """Claim `coupon_id` for `request.user_id`; raises the refusal as a CouponError."""
    return claimed_or_raise((await claim_all(pool, coupon_id, [request]))[0])
