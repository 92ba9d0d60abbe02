"""The group-commit batcher: many concurrent requests for one key, granted in one transaction.

A hot coupon can commit only so often: each commit waits for the WAL flush and hands the row
lock to the next waiter, and a quiet coupon pays a whole transaction, round trip and commit
for each claim. `GroupCommitter` stops paying that once per claim. Within one process,
requests for the same key are gathered into a batch and handed to a `flush` callable that
grants the whole batch in one transaction and one round trip. The strategies use one key for
all coupons (`ALL_COUPONS`): their items carry their coupon id, and the database groups a
batch by coupon (migration 0007), so claims on a thousand quiet coupons share a commit as
claims on one hot coupon do.

Guarantees:
- A caller's future resolves only after `flush` returned, i.e. after its transaction
  committed: an acknowledged result is as durable as the database makes it.
- Items reach `flush` in arrival order, and results are matched back by position.
- At most one batch per key is in flight per process. While it commits, the next batch
  gathers; so a process puts at most one connection at a time on a hot row, however big
  the crowd.
- A lane starting from idle waits at most `max_wait` seconds (or until `max_batch` items
  are in) before flushing; items that arrive while a batch commits are flushed as soon as it
  is done, without further wait.
- A `flush` that raises, or answers the wrong number of results, fails exactly the callers of
  that batch, each with a `BatchFailed` whose `__cause__` is the original error; earlier
  and later batches are unaffected. A `flush` may also answer a `BatchFailed` for some items
  (a part of the batch that failed alone, such as one coupon's group): exactly those
  callers get it raised, the others their results.

`GroupCommitter` knows nothing about SQL: the caller supplies `flush(key, items) -> results`.
`PerPool` keeps one committer per pool (so per process and database), with one lane for all
coupons, and `submit` turns a failed batch into the error each of its callers gets; both
group-commit strategies (v1 give, v2 claim) use them.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field

import asyncpg

from couponapi import metrics
from couponapi.db.pool import TRANSIENT
from couponapi.domain.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

MAX_BATCH = 128  # claims per batch, over all coupons
# The one key of the strategies' committers: a batch takes claims for any coupon.
ALL_COUPONS = "all coupons"
# Seconds a claim waits for company when the lane was idle. Measured
# (docs/performance.md): 0 is as fast on a hot coupon and faster on cold ones. Under a crowd
# the next batch gathers while the previous one commits anyway (classic group commit,
# self-clocking); from idle, a wait only delays a claim that has nobody to share a commit with.
MAX_WAIT = 0.0


class BatchFailed(Exception):
    """The batch this request was in could not be committed; `__cause__` says why."""

    def __init__(self, key: object, size: int, cause: BaseException) -> None:
        super().__init__(f"group commit of {size} requests for {key} failed: {cause!r}")
        self.__cause__ = cause
        self.key = key
        self.size = size


@dataclass(eq=False)
class _Lane[I, R]:
    """The pending requests of one key, and the task that flushes them."""

    pending: deque[tuple[I, asyncio.Future[R]]] = field(default_factory=deque)
    full: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class GroupCommitter[K: Hashable, I, R]:
    """Gathers `submit(key, item)` calls per key and flushes them in batches.

    `flush(key, items)` must commit all of `items` atomically and return one result per item,
    in the same order; a result that is a `BatchFailed` is raised to that item's caller (its
    part of the batch failed and wrote nothing). One instance belongs to one event loop (one
    server process).
    """

    def __init__(
        self,
        flush: Callable[[K, Sequence[I]], Awaitable[Sequence[R | BatchFailed]]],
        *,
        max_batch: int = 128,
        max_wait: float = 0.001,
    ) -> None:
        if max_batch < 1 or max_wait < 0:
            raise ValueError("max_batch must be >= 1 and max_wait >= 0")
        self._flush = flush
        self.max_batch = max_batch
        self.max_wait = max_wait
        self._lanes: dict[K, _Lane[I, R]] = {}

    async def submit(self, key: K, item: I) -> R:
        """Queue `item` for `key`; returns its result once its batch has committed."""
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        lane.pending.append((item, future))
        if len(lane.pending) >= self.max_batch:
            lane.full.set()
        if lane.task is None:
            lane.task = asyncio.create_task(self._drain(key, lane))
        return await future

    def in_flight(self) -> int:
        """Keys with a batch gathering or committing (for tests and metrics)."""
        return len(self._lanes)

    async def _drain(self, key: K, lane: _Lane[I, R]) -> None:
        """Flush the lane batch after batch until it is empty, then retire it."""
        batch: list[tuple[I, asyncio.Future[R]]] = []
        try:
            if len(lane.pending) < self.max_batch and self.max_wait > 0:
                with suppress(TimeoutError):
                    async with asyncio.timeout(self.max_wait):
                        await lane.full.wait()
            while lane.pending:
                size = min(len(lane.pending), self.max_batch)
                batch = [lane.pending.popleft() for _ in range(size)]
                lane.full.clear()
                await self._commit(key, batch)
        except BaseException as error:  # cancelled at shutdown: nobody may wait forever
            self._fail(key, [*batch, *lane.pending], error)
            lane.pending.clear()
            raise
        finally:
            # Runs with no await after the loop ended, so no submit() slipped in between.
            del self._lanes[key]

    async def _commit(self, key: K, batch: list[tuple[I, asyncio.Future[R]]]) -> None:
        try:
            results = await self._flush(key, [item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"flush answered {len(results)} results for {len(batch)}")
        except Exception as error:
            log.warning("group commit batch of %d for %s failed: %r", len(batch), key, error)
            self._fail(key, batch, error)
            return
        for (_, future), result in zip(batch, results, strict=True):
            # A caller that went away (cancelled) still had its item committed; nobody to tell.
            if future.done():
                continue
            if isinstance(result, BatchFailed):
                future.set_exception(result)
            else:
                future.set_result(result)

    @staticmethod
    def _fail(
        key: object, batch: Sequence[tuple[object, asyncio.Future[R]]], error: BaseException
    ) -> None:
        for _, future in batch:
            if not future.done():
                future.set_exception(BatchFailed(key, len(batch), error))


class PerPool[I, R]:
    """One GroupCommitter per pool (so per process and per database), made on first use, with
    one lane (ALL_COUPONS): `flush(pool, items)` gets claims for any coupons, in arrival order.

    asyncpg pools cannot be weakly referenced; committers of closed pools are dropped
    whenever a new one is made, so tests that make many pools do not accumulate them."""

    def __init__(
        self, flush: Callable[[asyncpg.Pool, Sequence[I]], Awaitable[Sequence[R | BatchFailed]]]
    ) -> None:
        self._flush = flush
        self._committers: dict[asyncpg.Pool, GroupCommitter[str, I, R]] = {}

    def __call__(self, pool: asyncpg.Pool) -> GroupCommitter[str, I, R]:
        committer = self._committers.get(pool)
        if committer is None:
            for old in [p for p in self._committers if p.is_closing()]:
                del self._committers[old]

            async def flush(key: str, items: Sequence[I]) -> Sequence[R | BatchFailed]:
                results = await self._flush(pool, items)
                metrics.observe_batch(len(items))  # couponapi_batch_size at /metrics
                return results

            committer = GroupCommitter(flush, max_batch=MAX_BATCH, max_wait=MAX_WAIT)
            self._committers[pool] = committer
        return committer


async def submit[I, R](committer: GroupCommitter[str, I, R], item: I) -> R:
    """Submit one claim; answered after its batch committed, or raises why it did not.

    Nothing of a failed batch (or of a failed coupon's group in it) was written. A transient
    cause (db.pool.TRANSIENT) would have failed the same way one claim at a time: it is
    re-raised as a copy of itself, so the API answers exactly as it does then (503 +
    Retry-After, with the specific message). Anything else (a constraint, a bug) most likely
    belongs to another claim of the batch, so this one gets DatabaseUnavailable (503, retry:
    it will land in another batch); the cause was logged once per batch or group."""
    try:
        return await committer.submit(ALL_COUPONS, item)
    except BatchFailed as failed:
        cause = failed.__cause__
        if isinstance(cause, TRANSIENT):
            raise copy.copy(cause) from failed
        raise DatabaseUnavailable(
            "this claim's batch could not be committed; nothing was written, retry shortly"
        ) from failed
