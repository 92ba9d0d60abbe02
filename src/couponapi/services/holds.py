"""The hold sweeper: every expiry becomes an `expired` ledger row within seconds.

Holds are exact without it: every claim path expires, under the coupon row lock, the due
holds it needs, and every read counts a due hold as expired (docs/design.md#holds-that-expire).
What the sweeper adds is the ledger row (and the unit in `coupon.quantity`) of every other
expiry, so the books say what happened even on a coupon nobody claims any more.

Every server process runs it (create_app's lifespan), on every host: sweep_holds_v1 takes a
per-coupon advisory try-lock (another sweeper on that coupon makes it move on), then the
coupon row lock every claim path takes first, then the claim rows with SKIP LOCKED. A hold
is expired once, by whoever locks it first; a sweeper never waits for a claim row, and never
holds a claim row while waiting for a coupon row: no deadlock with claims. Batches of
BATCH rows, so a claim waits behind at most one batch on a coupon with a million due holds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from uuid import UUID

import asyncpg

from couponapi.db.queries import query

log = logging.getLogger(__name__)

BATCH = 1_000  # holds per transaction: what a claim on that coupon may wait behind
COUPONS = 100  # coupons with due holds looked at per round
ROUND_S = 0.5  # a round stops taking batches after this long, so the next one starts on time


async def sweep_coupon(pool: asyncpg.Pool, coupon_id: UUID, batch: int = BATCH) -> int:
    """Expire up to `batch` due holds of one coupon with their ledger rows; how many (0 when
    none is due or another sweeper holds the coupon right now)."""
    expired: int = await pool.fetchval(query("sweep_holds"), coupon_id, batch)
    return expired


async def sweep_once(
    pool: asyncpg.Pool, batch: int = BATCH, coupons: int = COUPONS, budget_s: float = ROUND_S
) -> int:
    """One round: for each coupon with a due hold, batches until none is due or the round's
    time is up; how many holds were expired."""
    deadline = time.monotonic() + budget_s
    total = 0
    for row in await pool.fetch(query("coupons_with_due_holds"), coupons):
        while True:
            expired = await sweep_coupon(pool, row["coupon_id"], batch)
            total += expired
            if expired < batch or time.monotonic() > deadline:
                break
        if time.monotonic() > deadline:
            break
    return total


async def sweep_holds_forever(pool: asyncpg.Pool, every: float = 1.0) -> None:
    """Every `every` seconds, one round (the app runs this in every worker). A failed round
    (PostgreSQL away, a lock or statement timeout) is logged and the next one tries again:
    nothing half-done is left, each batch is its own transaction."""
    while True:
        await asyncio.sleep(every)
        try:
            await sweep_once(pool)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as error:
            log.warning("hold sweep failed, retrying in %.0f s: %r", every, error)
