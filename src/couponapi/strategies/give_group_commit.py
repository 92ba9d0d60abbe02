"""v1 gives with group commit: concurrent gives for one coupon granted in one transaction.

Isolation: READ COMMITTED; each batch is one call of `give_coupons_to_users`, so one
statement, one transaction, one round trip, one WAL flush for up to MAX_BATCH grants.
Locks: per process, claims for the same coupon are gathered by a GroupCommitter (those that
arrive while the coupon's previous batch commits, up to MAX_BATCH), with at most one batch
in flight per coupon, so a process keeps at most one connection waiting on a hot row. In the
database the function first reads the quantity without a lock (sold out or unknown: refused
with no lock and no write), then takes the coupon's row lock (`FOR UPDATE`) and grants in
arrival order until the coupon runs out. Batches from other processes or machines queue at
that lock and each reads what the previous one committed: no oversell; one row lock per
transaction: no deadlock (comment at the lock in migration 0003).
Durability: a caller is answered only after its batch committed.
How it fails: per claim, 'sold_out' -> SoldOut, 'not_found' -> CouponNotFound. A batch
whose transaction fails fails only its own claims, and nothing of it was written: a transient
cause (lock or statement timeout, PostgreSQL gone) is raised to each caller as it would be one
claim at a time (503 + Retry-After); any other cause (a constraint: most likely another claim's
fault) gives DatabaseUnavailable (503 + Retry-After: a retry lands in another batch). The
cause is logged once per batch. A client that disconnects while its batch commits may
still have been granted (as with any commit whose answer is lost); the ledger says so.
No sold-out cache: v2 releases and admin PATCHes give units back, and another process could
not tell this one, so every refusal is decided by the database (cheaply, see above).
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import asyncpg

from couponapi.db.queries import query
from couponapi.domain.claims import Grant
from couponapi.domain.errors import CouponNotFound, SoldOut
from couponapi.strategies.batcher import PerPool, submit


async def _give_batch(
    pool: asyncpg.Pool, coupon_id: UUID, user_ids: Sequence[str]
) -> list[asyncpg.Record]:
    return await pool.fetch(query("give_batch"), coupon_id, list(user_ids))


committer = PerPool(_give_batch)


async def give(pool: asyncpg.Pool, coupon_id: UUID, user_id: str) -> Grant:
    """Join the coupon's next batch; answered once that batch committed."""
    outcome, left = await submit(committer(pool), coupon_id, user_id)
    if outcome == "granted":
        return Grant(coupon_id=coupon_id, user_id=user_id, quantity_left=left)
    if outcome == "sold_out":
        raise SoldOut(coupon_id)
    raise CouponNotFound(coupon_id)
