"""A coupon's audit: its conservation check (couponapi.domain.audit), read in one snapshot.

One statement (the named query coupon_audit), so every count is of the same instant: no
claim, release or expiry committing meanwhile can make the books look unbalanced. It takes
no lock: an audit never slows a claim. Its cost is one pass over the coupon's claims and
ledger rows, so it is an operator's tool (admin or server key), not a hot path.
"""

from __future__ import annotations

from dataclasses import replace
from uuid import UUID

import asyncpg

from couponapi.db.queries import query
from couponapi.domain.audit import Audit, Ledger, problems_of
from couponapi.domain.errors import CouponNotFound


async def audit(pool: asyncpg.Pool, coupon_id: UUID) -> Audit:
    """The books of one coupon as of now; CouponNotFound when there is none."""
    row = await pool.fetchrow(query("coupon_audit"), coupon_id)
    if row is None:
        raise CouponNotFound(coupon_id)
    found = Audit(
        coupon_id=row["id"],
        checked_at=row["checked_at"],
        quantity=row["quantity"],
        remaining=row["stored_remaining"] + row["expired_pending"],
        held=row["held"],
        redeemed=row["redeemed"],
        released=row["released"],
        expired=row["expired"],
        expired_pending=row["expired_pending"],
        claims=row["claims"],
        given_v1=row["given_v1"],
        users_over_limit=row["users_over_limit"],
        ledger=Ledger(
            granted=row["ledger_granted"],
            released=row["ledger_released"],
            redeemed=row["ledger_redeemed"],
            expired=row["ledger_expired"],
        ),
    )
    return replace(found, problems=problems_of(found))
