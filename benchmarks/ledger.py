"""Coupons for a run, and the database checks after it: a broken invariant is a failure.

v1: quantity consumed == v1 ledger rows (coupon_given_events), and no user granted twice
(every request claims as a new user). v2: consumed == claims == 'granted' ledger rows
(claim_event), and nobody over the per-user limit (a live claim is 'claimed' or 'redeemed').
Granted answers must fit the ledger: 2xx <= ledger rows <= 2xx + requests whose answer was
lost (still in flight when wrk stopped, or timed out).
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import Any
from uuid import UUID, uuid4

import asyncpg


async def make_coupons(
    url: str, count: int, quantity: int, hold_seconds: int | None = None
) -> list[UUID]:
    """`count` coupons of `quantity` each (per-user limit 1; claims held `hold_seconds`, None:
    for ever)."""
    ids = [uuid4() for _ in range(count)]
    connection = await asyncpg.connect(url)
    try:
        await connection.executemany(
            "INSERT INTO coupon (id, name, type, quantity, hold_seconds)"
            " VALUES ($1, 'bench', 'percent', $2, $3)",
            [(coupon_id, quantity, hold_seconds) for coupon_id in ids],
        )
    finally:
        await connection.close()
    return ids


@dataclass(frozen=True)
class Ledger:
    """What the database says about a run's coupons."""

    consumed: int
    ledger_rows: int
    claims: int  # v2 claim rows (v1: same as ledger_rows)
    most_per_user: int
    limit: int
    # Transactions that granted: the grants of one transaction share its now() (v1's given_at,
    # v2's occurred_at), so ledger_rows / commits is the mean group-commit batch (1 when one
    # claim is one transaction).
    commits: int

    def problems(self, answered_2xx: int, lost: int) -> list[str]:
        """Every broken invariant, in words; empty when the run is sound."""
        found = []
        if self.ledger_rows != self.consumed:
            over = self.ledger_rows - self.consumed
            found.append(
                f"oversold {over}: {self.ledger_rows} ledger rows, {self.consumed} consumed"
                if over > 0
                else f"{self.consumed} consumed but only {self.ledger_rows} ledger rows"
            )
        if self.claims != self.ledger_rows:
            found.append(f"{self.claims} claims but {self.ledger_rows} ledger rows")
        if self.most_per_user > self.limit:
            found.append(f"a user holds {self.most_per_user} (limit {self.limit})")
        if not answered_2xx <= self.ledger_rows <= answered_2xx + lost:
            found.append(
                f"{answered_2xx} granted answers do not fit {self.ledger_rows} ledger rows"
                f" (+{lost} answers lost)"
            )
        return found

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def read_ledger(url: str, api: str, ids: list[UUID], initial: int) -> Ledger:
    """The ledger of the coupons `ids` (each created with `initial`), read in one snapshot
    once the service is done: requests wrk gave up on may still be queued at the row lock or
    committing. Waiting for them also keeps the next run from starting behind them, where their
    wait would count as its timeouts (a run at 1,000 connections leaves up to 1,000 behind)."""
    connection = await asyncpg.connect(url)
    try:
        last = None
        for _ in range(120):  # at most ~30 s
            row = await connection.fetchrow(V1_LEDGER if api == "v1" else V2_LEDGER, ids, initial)
            busy = await connection.fetchval(IN_FLIGHT)
            assert row is not None
            if row == last and busy == 0:
                break
            last = row
            await asyncio.sleep(0.25)
        assert last is not None
        return Ledger(
            last["consumed"], last["ledger"], last["claims"], last["most"], last["lim"],
            last["commits"],
        )  # fmt: skip
    finally:
        await connection.close()


# The service's sessions on this database that are in a statement or a transaction.
IN_FLIGHT = """
SELECT count(*) FROM pg_stat_activity
 WHERE datname = current_database() AND backend_type = 'client backend'
   AND state <> 'idle' AND pid <> pg_backend_pid()"""

# One statement each, so one snapshot: consumed and ledger rows are compared as of one moment.
V1_LEDGER = """
SELECT $2 * cardinality($1::uuid[]) - (SELECT sum(quantity) FROM coupon WHERE id = ANY($1))
           AS consumed,
       count(*) AS ledger, count(*) AS claims, coalesce(max(n), 0) AS most, 1 AS lim,
       count(DISTINCT given_at) AS commits
  FROM (SELECT count(*) OVER (PARTITION BY couponid, userid) AS n, given_at
          FROM coupon_given_events WHERE couponid::uuid = ANY($1::uuid[])) AS g"""

V2_LEDGER = """
SELECT $2 * cardinality($1::uuid[]) - (SELECT sum(quantity) FROM coupon WHERE id = ANY($1))
           AS consumed,
       (SELECT count(*) FROM claim_event WHERE coupon_id = ANY($1) AND kind = 'granted')
           AS ledger,
       (SELECT count(*) FROM claim
         WHERE coupon_id = ANY($1) AND status IN ('claimed', 'redeemed')) AS claims,
       (SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM claim
          WHERE coupon_id = ANY($1) AND status IN ('claimed', 'redeemed')
          GROUP BY coupon_id, user_id) AS g)
           AS most,
       (SELECT max(per_user_limit) FROM coupon WHERE id = ANY($1)) AS lim,
       (SELECT count(DISTINCT occurred_at) FROM claim_event
          WHERE coupon_id = ANY($1) AND kind = 'granted') AS commits"""
