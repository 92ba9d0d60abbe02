"""What the dashboard shows: every recent coupon, what is left, the holds still running
(held) and the expired claims, claims/s and refusals/s.

Grants are counted from the ledgers' timestamps (coupon_given_events.given_at for v1,
claim_event.occurred_at for v2): exact across any number of server processes and free for
the claim path. Refusals leave no ledger row, so each process counts them in memory, and only
when a refusal is answered (the domain-error handler, never a grant): with several workers
the refusal rate is that of the worker that answered the poll.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import cast
from uuid import UUID

import asyncpg
import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ExceptionHandler

from couponapi.db.queries import query
from couponapi.domain.errors import AuthRefusal, CouponNotFound

BUCKET_S = 2  # one chart point per 2 seconds
WINDOW_S = 180  # the chart spans the last 3 minutes
MAX_LEDGER_ROWS = 200_000  # newest ledger rows read per poll: bounds the query's cost
NEWEST_COUPONS = 12
RATE_BUCKETS = 2  # claims/s averages the last 2 complete buckets


class CouponStats(msgspec.Struct, kw_only=True):
    """One coupon on the dashboard; the series are per bucket, oldest first, ending now."""

    id: UUID
    name: str | None
    quantity: int
    remaining: int  # as of now: a hold past its end is back
    hold_seconds: int | None
    held: int  # claims whose hold is still running (live, neither redeemed nor expired)
    expired: int  # claims whose hold ended unredeemed, marked by the sweeper or not yet
    claims_per_s: float
    refusals_per_s: float
    claims: list[int]
    refusals: list[int]


class Stats(msgspec.Struct, kw_only=True):
    """The dashboard's whole picture at one moment."""

    bucket_s: int
    window_s: int
    coupons: list[CouponStats]


class RefusalCounter:
    """Refusals per coupon per bucket in this process, forgetting what is older than the window."""

    def __init__(self) -> None:
        self.buckets: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def record(self, coupon_id: str, now: float | None = None) -> None:
        """Count one refusal of `coupon_id` (its id as the path spelled it)."""
        bucket = int((now if now is not None else time.time()) // BUCKET_S)
        if bucket not in self.buckets:
            for old in [b for b in self.buckets if b <= bucket - WINDOW_S // BUCKET_S]:
                del self.buckets[old]
        self.buckets[bucket][coupon_id.lower()] += 1

    def series(self, coupon_id: str, now: float | None = None) -> list[int]:
        """Refusals per bucket over the window, oldest first, the current bucket last."""
        last = int((now if now is not None else time.time()) // BUCKET_S)
        points = WINDOW_S // BUCKET_S
        key = coupon_id.lower()
        return [self.buckets.get(b, {}).get(key, 0) for b in range(last - points + 1, last + 1)]


def counting_refusals(handler: ExceptionHandler, counter: RefusalCounter) -> ExceptionHandler:
    """Wrap the domain-error handler so every refusal of a coupon route is counted first."""

    answer = cast(Callable[[Request, Exception], Awaitable[Response]], handler)

    async def counted(request: Request, error: Exception) -> Response:
        coupon_id = request.path_params.get("coupon_id")
        # Not CouponNotFound: ids that do not exist must not grow the counter without bound.
        # Nor a refused credential: that is the caller's, not the coupon's.
        if coupon_id is not None and not isinstance(error, CouponNotFound | AuthRefusal):
            counter.record(str(coupon_id))
        return await answer(request, error)

    return counted


def rate(series: list[int]) -> float:
    """Per second over the last complete buckets (the current one is still filling)."""
    complete = series[-1 - RATE_BUCKETS : -1]
    return round(sum(complete) / (len(complete) * BUCKET_S), 1) if complete else 0.0


async def snapshot(pool: asyncpg.Pool, refusals: RefusalCounter) -> Stats:
    """Read the ledgers and the coupons; two queries, neither touching the claim path's locks."""
    points = WINDOW_S // BUCKET_S
    grants: dict[UUID, dict[int, int]] = defaultdict(dict)
    now_bucket = 0
    for row in await pool.fetch(
        query("dashboard_recent_grants"), BUCKET_S, WINDOW_S, MAX_LEDGER_ROWS
    ):
        now_bucket = row["now_bucket"]
        if row["coupon_id"] is not None:
            grants[row["coupon_id"]][row["bucket"]] = row["n"]
    coupons = []
    now = time.time()
    for row in await pool.fetch(query("dashboard_coupons"), NEWEST_COUPONS, list(grants)):
        by_bucket = grants.get(row["id"], {})
        claims = [by_bucket.get(b, 0) for b in range(now_bucket - points + 1, now_bucket + 1)]
        refused = refusals.series(str(row["id"]), now)
        coupons.append(
            CouponStats(
                id=row["id"],
                name=row["name"],
                quantity=row["total_quantity"],
                remaining=row["quantity"],
                hold_seconds=row["hold_seconds"],
                held=row["held"],
                expired=row["expired"],
                claims_per_s=rate(claims),
                refusals_per_s=rate(refused),
                claims=claims,
                refusals=refused,
            )
        )
    return Stats(bucket_s=BUCKET_S, window_s=WINDOW_S, coupons=coupons)
