"""v2 claim service: claim (through a strategy), release, redeem, list, and key upkeep.

Each function takes the pool and returns domain objects or raises a CouponError; the locks
and rules are in PostgreSQL (migration 0002) and the strategies (strategies/v2.py).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from uuid import UUID

import asyncpg

from couponapi.claims import Claim, Claimed, ClaimRequest
from couponapi.coupons_v2 import START
from couponapi.db.queries import query
from couponapi.domain import (
    AlreadyRedeemed,
    AlreadyReleased,
    ClaimNotFound,
    CouponError,
    CouponNotFound,
)
from couponapi.strategies.v2 import CLAIM_STRATEGIES

Cursor = tuple[datetime, UUID] | None
log = logging.getLogger(__name__)


def _claim(row: asyncpg.Record) -> Claim:
    return Claim(
        id=row["id"],
        coupon_id=row["coupon_id"],
        user_id=row["user_id"],
        code=row["code"],
        status=row["status"],
        claimed_at=row["claimed_at"],
        released_at=row["released_at"],
        redeemed_at=row["redeemed_at"],
    )


async def claim(
    pool: asyncpg.Pool, strategy: str, coupon_id: UUID, request: ClaimRequest
) -> Claimed:
    """Claim `coupon_id` for `request.user_id` the way `strategy` does it."""
    return await CLAIM_STRATEGIES[strategy](pool, coupon_id, request)


def _refusal(outcome: str, claim_id: UUID) -> CouponError:
    if outcome == "already_released":
        return AlreadyReleased(f"claim {claim_id} was released already")
    if outcome == "already_redeemed":
        return AlreadyRedeemed(f"claim {claim_id} was redeemed already")
    raise AssertionError(f"unexpected outcome {outcome!r}")


async def get_claim(pool: asyncpg.Pool, claim_id: UUID) -> Claim:
    """One claim; ClaimNotFound when there is none."""
    row = await pool.fetchrow(query("get_claim"), claim_id)
    if row is None:
        raise ClaimNotFound(f"claim {claim_id} not found")
    return _claim(row)


async def release(pool: asyncpg.Pool, claim_id: UUID) -> Claim:
    """Give the claim back (its coupon returns to what is left); 404, or 409 if not live."""
    outcome: str = await pool.fetchval(query("release_claim"), claim_id)
    if outcome == "not_found":
        raise ClaimNotFound(f"claim {claim_id} not found")
    if outcome != "released":
        raise _refusal(outcome, claim_id)
    return await get_claim(pool, claim_id)


async def redeem(pool: asyncpg.Pool, code: str) -> Claim:
    """Spend the claim with this code (canonical form, see codes.normalize_code), exactly
    once; ClaimNotFound for an unknown code, AlreadyRedeemed/AlreadyReleased when not live."""
    row = await pool.fetchrow(query("redeem_claim"), code)
    if row is None or row["outcome"] == "not_found":
        raise ClaimNotFound("no claim has this code")
    if row["outcome"] != "redeemed":
        raise _refusal(row["outcome"], row["claim_id"])
    return await get_claim(pool, row["claim_id"])


async def claims_of_coupon(
    pool: asyncpg.Pool, coupon_id: UUID, after: Cursor, limit: int
) -> list[Claim]:
    """Up to `limit` claims of a coupon after the cursor (claimed_at, id); 404 unknown coupon."""
    at, last_id = after or START
    rows = await pool.fetch(query("list_claims_of_coupon"), coupon_id, at, last_id, limit)
    if not rows and not await pool.fetchval(query("coupon_exists"), coupon_id):
        raise CouponNotFound(coupon_id)
    return [_claim(row) for row in rows]


async def claims_of_user(
    pool: asyncpg.Pool, user_id: str, after: Cursor, limit: int
) -> list[Claim]:
    """Up to `limit` claims of a user after the cursor (claimed_at, id), every coupon."""
    at, last_id = after or START
    return [
        _claim(row)
        for row in await pool.fetch(query("list_claims_of_user"), user_id, at, last_id, limit)
    ]


async def delete_expired_keys(pool: asyncpg.Pool, batch: int = 10_000) -> int:
    """Forget up to `batch` idempotency keys older than 24 hours; how many were deleted."""
    deleted: int = await pool.fetchval(query("delete_expired_idempotency_keys"), batch)
    return deleted


async def sweep_expired_keys_forever(pool: asyncpg.Pool, every: float = 600.0) -> None:
    """Every `every` seconds, forget idempotency keys older than 24 hours (the app runs this,
    in every worker: SKIP LOCKED lets sweepers share the work). At most 100 batches a round."""
    while True:
        await asyncio.sleep(every)
        try:
            for _ in range(100):
                if await delete_expired_keys(pool) == 0:
                    break
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.warning("idempotency key sweep failed, retrying later: %r", error)
