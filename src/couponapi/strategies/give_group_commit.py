"""v1 gives with group commit: concurrent gives for any coupons granted in one transaction.

Isolation: READ COMMITTED; each batch is one call of `give_coupons_many_v1`, so one
statement, one transaction, one round trip, one WAL flush for up to MAX_BATCH grants, over
any number of coupons.
Locks: per process, gives for any coupon are gathered by one GroupCommitter lane (those that
arrive while the previous batch commits, up to MAX_BATCH), with one batch in flight, so a
process keeps at most one connection waiting on a hot row. In the database the batch is
grouped by coupon and the groups are given in ascending coupon id, each by
`give_coupons_to_users`: it first reads the quantity without a lock (sold out or unknown:
refused with no lock and no write), then takes the coupon's row lock (`FOR UPDATE`) and grants
in arrival order until the coupon runs out. Batches from other processes or machines queue at
that lock and each reads what the previous one committed: no oversell; every batch locks
coupons in the same ascending order: no deadlock (comments at the locks in migrations 0003
and 0007).
Durability: a caller is answered only after its batch committed.
How it fails: per claim, 'sold_out' -> SoldOut, 'not_found' -> CouponNotFound. A coupon's
group that fails (a constraint, a lock timeout) is rolled back alone and fails only its own
claims, with the error PostgreSQL raised (strategies.groups); a batch whose transaction fails
as a whole (statement timeout, PostgreSQL gone) fails all of its claims, and nothing of it
was written. A transient cause (lock or statement timeout, PostgreSQL gone) is raised to each
caller as it would be one claim at a time (503 + Retry-After); any other cause (a constraint:
most likely another claim's fault) gives DatabaseUnavailable (503 + Retry-After: a retry lands
in another batch). The cause is logged once per batch or group. A client that disconnects
while its batch commits may still have been granted (as with any commit whose answer is
lost); the ledger says so.
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
from couponapi.strategies.batcher import BatchFailed, PerPool, submit
from couponapi.strategies.groups import batch_failed, failed_groups

Given = tuple[str, int | None]  # give_coupons_to_users' (outcome, quantity_left)


async def give_many(
    pool: asyncpg.Pool, gives: Sequence[tuple[UUID, str]]
) -> list[Given | BatchFailed]:
    """One call of give_coupons_many_v1 for `gives` (coupon, user), in order: one result each,
    a failed coupon group's gives as BatchFailed."""
    coupon_ids = [coupon_id for coupon_id, _ in gives]
    rows = await pool.fetch(query("give_many"), coupon_ids, [user for _, user in gives])
    failures = failed_groups(coupon_ids, [row["failure"] for row in rows])
    return [
        batch_failed(coupon_id, failures)
        if row["outcome"] == "failed"
        else (row["outcome"], row["quantity_left"])
        for coupon_id, row in zip(coupon_ids, rows, strict=True)
    ]


committer = PerPool(give_many)


async def give(pool: asyncpg.Pool, coupon_id: UUID, user_id: str) -> Grant:
    """Join the process's next batch; answered once that batch committed."""
    outcome, left = await submit(committer(pool), (coupon_id, user_id))
    if outcome == "granted" and left is not None:
        return Grant(coupon_id=coupon_id, user_id=user_id, quantity_left=left)
    if outcome == "sold_out":
        raise SoldOut(coupon_id)
    raise CouponNotFound(coupon_id)
