"""v2 claims with group commit: concurrent claims for one coupon share one claim_coupons_v2 call.

Isolation: READ COMMITTED; each batch is one call of claim_coupons_v2 (schema.sql), one
statement, so one transaction, one round trip and one WAL flush for up to MAX_BATCH claims.
Locks: per process, a GroupCommitter gathers claims per coupon in arrival order (those that
arrive while the previous batch commits, up to MAX_BATCH) with one batch in flight per coupon,
so a process keeps at most one connection on a hot coupon row. In the database the function
locks the coupon row once, then idempotency keys (sorted), then claim rows: the order every
claim path uses, so no deadlock; under the coupon row lock it decides the whole batch in
order against what the previous holder committed, so neither the quantity nor a per-user
limit can be exceeded, whatever the number of processes or machines (comment at the lock in
schema.sql). Every rule (window, pause, limit, keys, codes) and every outcome's meaning
lives once: in claim_coupons_v2 and couponapi.domain.claims.claim_result, shared with `function`.
Durability: a caller is answered only after its batch committed.
How it fails: a refusal is that claim's own outcome (SoldOut, LimitReached, NotActive,
IdempotencyKeyConflict, CouponNotFound). A code collision (claim_code_unique) rolls the call
back and it is retried once with fresh codes. Any other failure fails only that batch's
claims and writes nothing of it: a transient cause (lock or statement timeout, PostgreSQL gone)
is raised to each as it would be one claim at a time, anything else as DatabaseUnavailable
(503 + Retry-After); see strategies.batcher.submit. The cause is logged once per batch.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from couponapi.domain.claims import Claimed, ClaimRequest, claimed_or_raise
from couponapi.strategies.batcher import PerPool, submit
from couponapi.strategies.claim_function import claim_all

committer = PerPool(claim_all)


async def claim(pool: asyncpg.Pool, coupon_id: UUID, request: ClaimRequest) -> Claimed:
    """Join the coupon's next batch; answered once that batch committed."""
    return claimed_or_raise(await submit(committer(pool), coupon_id, request))
