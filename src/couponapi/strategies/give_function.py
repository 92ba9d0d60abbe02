"""The PL/pgSQL function `give_coupon_to_user`: the original's give-transaction-pgfunction.

Isolation: READ COMMITTED; the call is one statement, so one implicit transaction.
Locks: the function takes the coupon's row lock (`FOR UPDATE`) and holds it to commit, like
the locking strategy, but the whole check-decrement-log runs inside the server in one round
trip, so the lock is held for microseconds instead of four network round trips. It cannot
oversell or deadlock for the same reasons (see the comment at the lock in the migration).
How it fails: the function raises; `no_data_found` -> CouponNotFound, its
'Coupon run out!' (raise_exception) -> SoldOut. Nothing is written in either case.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from couponapi.db.queries import query
from couponapi.domain.claims import Grant
from couponapi.domain.errors import CouponNotFound, SoldOut


async def give(pool: asyncpg.Pool, coupon_id: UUID, user_id: str) -> Grant:
    """One call to give_coupon_to_user; the function does the locking."""
    try:
        left: int = await pool.fetchval(query("give_with_function"), coupon_id, user_id)
    except asyncpg.NoDataFoundError as error:
        raise CouponNotFound(coupon_id) from error
    except asyncpg.RaiseError as error:
        raise SoldOut(coupon_id) from error
    return Grant(coupon_id=coupon_id, user_id=user_id, quantity_left=left)
