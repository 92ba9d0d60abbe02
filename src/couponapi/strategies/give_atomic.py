"""One conditional statement: `UPDATE ... WHERE quantity > 0 RETURNING` plus the ledger insert.

Isolation: READ COMMITTED; one statement, so one implicit transaction and one round trip.
Locks: the UPDATE takes the coupon's row lock only when the row passes `quantity > 0`; a giver
that finds the row being updated waits for that commit, then re-checks the condition on the
new version, so exactly one giver gets the last unit: no oversell, and one row lock per
statement, so no deadlock (comment at the lock in queries.sql, `give_atomic`).
Sold out costs no lock and no write: the row fails the condition on the snapshot and is
skipped, and the transaction commits without a WAL flush.
How it fails: when nothing was taken, the same statement says whether the coupon exists
(`known`), so unknown -> CouponNotFound and sold out -> SoldOut without a second round trip.
Under a crowd every grant is still one commit and one lock hand-over on the hot row, which
caps it near PostgreSQL's single-row commit rate (see benchmarks/).
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from couponapi.db.queries import query
from couponapi.domain.claims import Grant
from couponapi.domain.errors import CouponNotFound, SoldOut


async def give(pool: asyncpg.Pool, coupon_id: UUID, user_id: str) -> Grant:
    """Take one unit and log it in one statement."""
    row = await pool.fetchrow(query("give_atomic"), coupon_id, user_id)
    assert row is not None  # the statement always answers exactly one row
    left: int | None = row["quantity_left"]
    if left is None:
        raise SoldOut(coupon_id) if row["known"] else CouponNotFound(coupon_id)
    return Grant(coupon_id=coupon_id, user_id=user_id, quantity_left=left)
