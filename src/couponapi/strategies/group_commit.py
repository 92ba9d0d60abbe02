"""Group commit: concurrent claims for one coupon granted in one transaction (v1 ledger).

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

import copy
from collections.abc import Awaitable, Callable, Sequence
from uuid import UUID

import asyncpg

from couponapi import metrics
from couponapi.db.queries import query
from couponapi.domain import CouponNotFound, DatabaseUnavailable, Grant, SoldOut
from couponapi.group_commit import BatchFailed, GroupCommitter

MAX_BATCH = 128
# Seconds a claim waits for company when its coupon's lane was idle. Measured (README
# "Performance"): 0 is as fast on a hot coupon and faster on cold ones. Under a crowd the next
# batch gathers while the previous one commits anyway (classic group commit, self-clocking);
# from idle, a wait only delays a claim that has nobody to share a commit with.
MAX_WAIT = 0.0


class PerPool[I, R]:
    """One GroupCommitter per pool (so per process and per database), made on first use.

    asyncpg pools cannot be weakly referenced; committers of closed pools are dropped
    whenever a new one is made, so tests that make many pools do not accumulate them."""

    def __init__(
        self, flush: Callable[[asyncpg.Pool, UUID, Sequence[I]], Awaitable[Sequence[R]]]
    ) -> None:
        self._flush = flush
        self._committers: dict[asyncpg.Pool, GroupCommitter[UUID, I, R]] = {}

    def __call__(self, pool: asyncpg.Pool) -> GroupCommitter[UUID, I, R]:
        committer = self._committers.get(pool)
        if committer is None:
            for old in [p for p in self._committers if p.is_closing()]:
                del self._committers[old]

            async def flush(key: UUID, items: Sequence[I]) -> Sequence[R]:
                results = await self._flush(pool, key, items)
                metrics.observe_batch(len(items))  # couponapi_batch_size at /metrics
                return results

            committer = GroupCommitter(flush, max_batch=MAX_BATCH, max_wait=MAX_WAIT)
            self._committers[pool] = committer
        return committer


# A batch that failed for one of these would have failed the same way one claim at a time:
# each caller gets its own copy of the error, so the API answers exactly as it does then
# (503 + Retry-After, with the specific message: lock timeout, statement timeout, no database).
TRANSIENT = (
    TimeoutError,
    OSError,
    asyncpg.LockNotAvailableError,
    asyncpg.QueryCanceledError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
)


async def submit[I, R](committer: GroupCommitter[UUID, I, R], coupon_id: UUID, item: I) -> R:
    """Submit one claim; answered after its batch committed, or raises why it did not.

    Nothing of a failed batch was written. A transient cause (TRANSIENT) is re-raised as a
    copy of itself, so it is answered as in a one-at-a-time strategy. Anything else (a
    constraint, a bug) most likely belongs to another claim of the batch, so this one gets
    DatabaseUnavailable (503, retry: it will land in another batch); the batcher logged the
    cause once."""
    try:
        return await committer.submit(coupon_id, item)
    except BatchFailed as failed:
        cause = failed.__cause__
        if isinstance(cause, TRANSIENT):
            raise copy.copy(cause) from failed
        raise DatabaseUnavailable(
            "this claim's batch could not be committed; nothing was written, retry shortly"
        ) from failed


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
