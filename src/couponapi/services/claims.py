"""Claims, for both APIs: give (v1) and claim (v2) through a strategy, release, redeem, list.

Each function takes the pool and returns domain objects or raises a CouponError; the locks
and rules are in PostgreSQL and the strategies (couponapi.strategies). Every give and claim
is counted here, by strategy and outcome, for /metrics.
"""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

import asyncpg

from couponapi import metrics
from couponapi.db.queries import START, Keyset, query
from couponapi.domain.claims import Claim, Claimed, ClaimRequest, Grant
from couponapi.domain.errors import (
    AlreadyRedeemed,
    AlreadyReleased,
    ClaimNotFound,
    CouponError,
    CouponNotFound,
    HoldExpired,
    NotPermitted,
)
from couponapi.strategies import CLAIM_STRATEGIES, GIVE_STRATEGIES

log = logging.getLogger(__name__)


async def give(pool: asyncpg.Pool, strategy: str, coupon_id: UUID, user_id: str) -> Grant:
    """Give one coupon to `user_id` the way `strategy` (v1) does it."""
    with metrics.ClaimCount(strategy):
        return await GIVE_STRATEGIES[strategy].give(pool, coupon_id, user_id)


async def claim(
    pool: asyncpg.Pool, strategy: str, coupon_id: UUID, request: ClaimRequest
) -> Claimed:
    """Claim `coupon_id` for `request.user_id` the way `strategy` (v2) does it."""
    with metrics.ClaimCount(strategy):
        return await CLAIM_STRATEGIES[strategy](pool, coupon_id, request)


def _refusal(outcome: str, claim_id: UUID) -> CouponError:
    if outcome == "already_released":
        return AlreadyReleased(f"claim {claim_id} was released already")
    if outcome == "already_redeemed":
        return AlreadyRedeemed(f"claim {claim_id} was redeemed already")
    if outcome == "expired":
        return HoldExpired(f"claim {claim_id} expired: its hold ended before it was used")
    raise AssertionError(f"unexpected outcome {outcome!r}")


async def get_claim(pool: asyncpg.Pool, claim_id: UUID) -> Claim:
    """One claim; ClaimNotFound when there is none."""
    row = await pool.fetchrow(query("get_claim"), claim_id)
    if row is None:
        raise ClaimNotFound(f"claim {claim_id} not found")
    return Claim(**row)


async def release(pool: asyncpg.Pool, claim_id: UUID, owner: str | None = None) -> Claim:
    """Give the claim back (its coupon returns to what is left); 404, or 409 if not live
    (HoldExpired when its hold ended: the unit went back by expiry).

    With `owner` (a user token's user), only that user's claim: any other id, held by someone
    else or by no one, is the same NotPermitted, so a user cannot probe for others' claims.
    A claim's user never changes, so checking it before the release cannot go stale."""
    if owner is not None and await pool.fetchval(query("claim_user"), claim_id) != owner:
        raise NotPermitted(f"claim {claim_id} is not one of yours")
    outcome: str = await pool.fetchval(query("release_claim"), claim_id)
    if outcome == "not_found":
        raise ClaimNotFound(f"claim {claim_id} not found")
    if outcome != "released":
        raise _refusal(outcome, claim_id)
    return await get_claim(pool, claim_id)


async def redeem(pool: asyncpg.Pool, code: str) -> Claim:
    """Spend the claim with this code (canonical form, see codes.normalize_code), exactly
    once; ClaimNotFound for an unknown code, AlreadyRedeemed/AlreadyReleased/HoldExpired when
    not live. A redemption racing its own expiry ends one way (redeem_claim_v2)."""
    row = await pool.fetchrow(query("redeem_claim"), code)
    if row is None or row["outcome"] == "not_found":
        raise ClaimNotFound("no claim has this code")
    if row["outcome"] != "redeemed":
        raise _refusal(row["outcome"], row["claim_id"])
    return await get_claim(pool, row["claim_id"])


async def claims_of_coupon(
    pool: asyncpg.Pool, coupon_id: UUID, after: Keyset | None, limit: int
) -> list[Claim]:
    """Up to `limit` claims of a coupon after the cursor (claimed_at, id); 404 unknown coupon."""
    at, last_id = after or START
    rows = await pool.fetch(query("list_claims_of_coupon"), coupon_id, at, last_id, limit)
    if not rows and not await pool.fetchval(query("coupon_exists"), coupon_id):
        raise CouponNotFound(coupon_id)
    return [Claim(**row) for row in rows]


async def claims_of_user(
    pool: asyncpg.Pool, user_id: str, after: Keyset | None, limit: int
) -> list[Claim]:
    """Up to `limit` claims of a user after the cursor (claimed_at, id), every coupon."""
    at, last_id = after or START
    rows = await pool.fetch(query("list_claims_of_user"), user_id, at, last_id, limit)
    return [Claim(**row) for row in rows]


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
