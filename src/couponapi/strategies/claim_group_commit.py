"""v2 claims with group commit: concurrent claims for any coupons share one transaction.

Isolation: READ COMMITTED; each batch is one call of claim_coupons_many_v1, one statement,
so one transaction, one round trip and one WAL flush for up to MAX_BATCH claims over any
number of coupons.
Locks: per process, one GroupCommitter lane gathers claims for any coupon in arrival order
(those that arrive while the previous batch commits, up to MAX_BATCH) with one batch in
flight, so a process keeps at most one connection on a hot coupon row. In the database
claim_batch_v1 decides the whole batch at once: it locks the batch's coupon rows in ascending
id, then idempotency keys (sorted), then claim rows, and decides every coupon's claims in
arrival order against what the previous holder committed, so neither the quantity nor a
per-user limit can be exceeded, whatever the number of processes or machines. Every batch
takes coupon rows in the same ascending order, so batches sharing coupons do not deadlock
(comments at the locks in schema.sql). Every rule (window, pause, limit, keys, codes) and
every outcome's meaning lives once: in claim_batch_v1 and couponapi.domain.claims.claim_result,
shared with `function`.
Durability: a caller is answered only after its batch committed.
How it fails: a refusal is that claim's own outcome (SoldOut, LimitReached, NotActive,
IdempotencyKeyConflict, CouponNotFound). When anything in the batch fails, the database decides
it again coupon by coupon: a coupon's group that fails is rolled back alone and fails only its
own claims (strategies.groups); the other coupons' claims commit. A group that
failed on a code collision (claim_code_unique) is retried once with fresh codes, in a second
call. A batch whose transaction fails as a whole (statement timeout, PostgreSQL gone) fails
all of its claims and writes nothing. A transient cause (lock or statement timeout,
PostgreSQL gone) is raised to each as it would be one claim at a time, anything else as
DatabaseUnavailable (503 + Retry-After); see strategies.batcher.submit. The cause is logged
once per batch or group.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import asyncpg

from couponapi.db.queries import query
from couponapi.domain.claims import (
    Claimed,
    ClaimRequest,
    claim_result,
    claimed_or_raise,
    many_claim_arguments,
)
from couponapi.domain.errors import CouponError
from couponapi.strategies.batcher import BatchFailed, PerPool, submit
from couponapi.strategies.groups import batch_failed, failed_groups

Answer = Claimed | CouponError | BatchFailed


def _collided(error: asyncpg.PostgresError) -> bool:
    return (
        isinstance(error, asyncpg.UniqueViolationError)
        and error.constraint_name == "claim_code_unique"
    )


async def claim_many(
    pool: asyncpg.Pool, claims: Sequence[tuple[UUID, ClaimRequest]]
) -> list[Answer]:
    """One call of claim_coupons_many_v1 for `claims` (coupon, request), in order: one result
    each, a failed coupon group's claims as BatchFailed. Groups whose new code collided with
    an existing one are claimed once more, in a second call, with fresh codes."""
    answers: dict[int, Answer] = {}
    todo = list(range(len(claims)))
    for attempt in (1, 2):
        batch = [claims[i] for i in todo]
        rows = await pool.fetch(query("claim_coupons_many"), *many_claim_arguments(batch))
        coupon_ids = [coupon_id for coupon_id, _ in batch]
        failures = failed_groups(
            coupon_ids, [row["body"] if row["outcome"] == "failed" else None for row in rows]
        )
        again = []
        for i, coupon_id, row in zip(todo, coupon_ids, rows, strict=True):
            if row["outcome"] != "failed":
                answers[i] = claim_result(coupon_id, row["outcome"], row["body"])
            elif attempt == 1 and _collided(failures[coupon_id][1]):
                again.append(i)
            else:
                answers[i] = batch_failed(coupon_id, failures)
        todo = again
        if not todo:
            break
    return [answers[i] for i in range(len(claims))]


committer: PerPool[tuple[UUID, ClaimRequest], Claimed | CouponError] = PerPool(claim_many)


async def claim(pool: asyncpg.Pool, coupon_id: UUID, request: ClaimRequest) -> Claimed:
    """Join the process's next batch; answered once that batch committed."""
    return claimed_or_raise(await submit(committer(pool), (coupon_id, request)))
