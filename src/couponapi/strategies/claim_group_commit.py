"""v2 claims with group commit: concurrent claims for one coupon share one claim_coupons_v1 call.

Isolation: READ COMMITTED; each batch is one call of claim_coupons_v1 (migration 0002), one
statement, so one transaction, one round trip and one WAL flush for up to MAX_BATCH claims.
Locks: per process, a GroupCommitter gathers claims per coupon in arrival order (those that
arrive while the previous batch commits, up to MAX_BATCH) with one batch in flight per coupon,
so a process keeps at most one connection on a hot coupon row. In the database the function
locks the coupon row once, then idempotency keys (sorted), then claim rows: the order every
claim path uses, so no deadlock; under the coupon row lock it decides the whole batch in
order against what the previous holder committed, so neither the quantity nor a per-user
limit can be exceeded, whatever the number of processes or machines (comment at the lock in
migration 0002). Every rule (window, pause, limit, keys, codes) and every outcome's meaning
lives once: in claim_coupons_v1 and couponapi.claims.claim_result, shared with `function`.
Durability: a caller is answered only after its batch committed.
How it fails: a refusal is that claim's own outcome (SoldOut, LimitReached, NotActive,
IdempotencyKeyConflict, CouponNotFound). A code collision (claim_code_unique) rolls the call
back and it is retried once with fresh codes. Any other failure fails only that batch's
claims and writes nothing of it: a transient cause (lock or statement timeout, PostgreSQL gone)
is raised to each as it would be one claim at a time, anything else as DatabaseUnavailable
(503 + Retry-After); see strategies.group_commit.submit. The cause is logged once per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import asyncpg

from couponapi.claims import (
    Claimed,
    ClaimRequest,
    claim_arguments,
    claim_result,
    claimed_or_raise,
)
from couponapi.db.queries import query
from couponapi.domain import CouponError
from couponapi.strategies.group_commit import PerPool, submit


async def _claim_batch(
    pool: asyncpg.Pool, coupon_id: UUID, requests: Sequence[ClaimRequest]
) -> list[Claimed | CouponError]:
    for attempt in (1, 2):
        try:
            rows = await pool.fetch(query("claim_coupons"), *claim_arguments(coupon_id, requests))
            break
        except asyncpg.UniqueViolationError as error:
            if error.constraint_name != "claim_code_unique" or attempt == 2:
                raise
    return [claim_result(coupon_id, row["outcome"], row["body"]) for row in rows]


committer = PerPool(_claim_batch)


async def claim(pool: asyncpg.Pool, coupon_id: UUID, request: ClaimRequest) -> Claimed:
    """Join the coupon's next batch; answered once that batch committed."""
    return claimed_or_raise(await submit(committer(pool), coupon_id, request))
