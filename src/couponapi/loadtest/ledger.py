"""The invariants a run must keep, checked against the database after the crowd has gone.

A safe strategy keeps, for a run alone on its coupon:
  quantity consumed == ledger rows of the run's users == grants acknowledged to them,
and no user holds more than the per-user limit. The naive strategy breaks the first
equality: its lost updates log more grants than the quantity went down by (an oversell that
never shows as a negative quantity). A claim that timed out may still have committed, so the
ledger may exceed the acknowledged grants by at most errors + timeouts.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from couponapi.db.queries import query
from couponapi.loadtest.model import LedgerCheck, Summary

Executor = asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy


async def quantity(db: Executor, coupon_id: UUID) -> int | None:
    """What is left of the coupon, None when it does not exist."""
    row = await db.fetchrow(query("get_coupon"), coupon_id)
    return None if row is None else int(row["remaining"])


async def quantity_if_known(db: Executor | None, coupon_id: UUID) -> int | None:
    """The coupon's quantity in `db`; None without a db, or when it is not this server's
    database (no such coupon, no coupon table, no permission)."""
    if db is None:
        return None
    try:
        return await quantity(db, coupon_id)
    except asyncpg.PostgresError:
        return None


def client_problems(summary: Summary, quantity_before: int) -> list[str]:
    """What the answers alone prove, without the database: more grants than were left."""
    if summary.granted > quantity_before:
        extra = summary.granted - quantity_before
        return [
            f"oversold: {summary.granted} users were told they got a coupon but only "
            f"{quantity_before} were left ({extra} too many)"
        ]
    return []


def ledger_problems(check: LedgerCheck, summary: Summary, limit: int) -> list[str]:
    """Every invariant the database's account breaks, in words."""
    problems = []
    rows, consumed = check.ledger_rows, check.consumed
    if rows > consumed:
        problems.append(
            f"oversold: the ledger holds {rows} grants but the quantity went down by only "
            f"{consumed} ({rows - consumed} coupons given that never existed)"
        )
    elif consumed > rows:
        problems.append(f"the quantity went down by {consumed} but only {rows} grants are logged")
    if summary.granted > rows:
        problems.append(f"{summary.granted - rows} acknowledged grants have no ledger row")
    if rows > summary.granted + summary.errors + summary.timeouts:
        unexplained = rows - summary.granted - summary.errors - summary.timeouts
        problems.append(f"{unexplained} ledger rows were never acknowledged to any user")
    if check.users_over_limit:
        problems.append(f"{check.users_over_limit} users hold more than {limit} coupon(s)")
    return problems


async def check(
    db: Executor,
    coupon_id: UUID,
    user_prefix: str,
    quantity_before: int,
    summary: Summary,
    limit: int = 1,
    ledger: str = "v1",
) -> LedgerCheck:
    """Read the database's account of the run by `user_prefix` users in the `ledger` (v1:
    coupon_given_events, v2: claim_event) and judge it."""
    after = await quantity(db, coupon_id)
    row = await db.fetchrow(query(f"loadtest_run_grants_{ledger}"), coupon_id, user_prefix, limit)
    assert row is not None
    result = LedgerCheck(
        quantity_before=quantity_before,
        quantity_after=after if after is not None else 0,
        consumed=quantity_before - (after if after is not None else 0),
        ledger_rows=row["ledger_rows"],
        users_over_limit=row["users_over_limit"],
        problems=[],
    )
    result.problems = ledger_problems(result, summary, limit)
    return result
