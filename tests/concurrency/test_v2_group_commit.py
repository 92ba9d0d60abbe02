"""v2 group commit under real concurrency: several OS processes, each batching its own crowd
through `group_commit`, against one coupon; the database is checked afterwards."""

from __future__ import annotations

import asyncio
import os
import sys
from collections import Counter
from collections.abc import Sequence
from uuid import UUID

import asyncpg
import msgspec
import pytest

from couponapi.domain.claims import ClaimRequest
from couponapi.domain.errors import DatabaseUnavailable, SoldOut
from couponapi.strategies import claim_group_commit
from tests.integration.test_v2_claim_function import new_coupon

pytestmark = pytest.mark.concurrency

Result = tuple[str, str | None]
Crowd = Sequence[tuple[str, str | None]]


async def claim_in_processes(
    url: str, coupon_id: UUID, crowds: Sequence[Crowd]
) -> list[list[Result]]:
    """Each crowd in its own process, all processes at once; results per crowd, in order."""

    async def run(crowd: Crowd) -> list[Result]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.concurrency.v2_claimer",
            url,
            str(coupon_id),
            "group_commit",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ},
        )
        out, _ = await process.communicate(msgspec.json.encode(crowd))
        assert process.returncode == 0
        return [(outcome, claim_id) for outcome, claim_id in msgspec.json.decode(out)]

    return list(await asyncio.gather(*(run(crowd) for crowd in crowds)))


async def check_ledger(pool: asyncpg.Pool, coupon_id: UUID, limit: int) -> int:
    """granted == quantity consumed == ledger rows, nobody over the limit; returns granted."""
    row = await pool.fetchrow(
        """SELECT c.total_quantity - c.quantity AS consumed,
                  (SELECT count(*) FROM claim WHERE coupon_id = c.id) AS claims,
                  (SELECT count(*) FROM claim_event
                    WHERE coupon_id = c.id AND kind = 'granted') AS ledger,
                  (SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM claim
                    WHERE coupon_id = c.id GROUP BY user_id) AS per_user) AS most
             FROM coupon c WHERE c.id = $1""",
        coupon_id,
    )
    assert row is not None
    assert row["consumed"] == row["claims"] == row["ledger"]
    assert row["most"] <= limit
    granted: int = row["claims"]
    return granted


async def test_mixed_users_with_a_limit_from_four_processes(
    database_url: str, pool: asyncpg.Pool
) -> None:
    coupon_id = await new_coupon(pool, 150, per_user_limit=2)
    # 4 processes x 200 claims by 100 users: every user tries 8 times, 4 of them at once.
    crowds = [[(f"u{(n + p) % 100}", None) for n in range(200)] for p in range(4)]
    results = await claim_in_processes(database_url, coupon_id, crowds)
    outcomes = Counter(outcome for crowd in results for outcome, _ in crowd)
    assert outcomes["granted"] == 150
    assert outcomes["granted"] + outcomes["SoldOut"] + outcomes["LimitReached"] == 800
    assert await check_ledger(pool, coupon_id, limit=2) == 150
    granted_ids = {cid for crowd in results for outcome, cid in crowd if outcome == "granted"}
    stored = {str(r["id"]) for r in await pool.fetch("SELECT id FROM claim")}
    assert granted_ids == stored


async def test_one_key_fired_from_three_processes_takes_one_coupon(
    database_url: str, pool: asyncpg.Pool
) -> None:
    coupon_id = await new_coupon(pool, 100)
    crowds = [
        [("alice", "key-1")] * 20 + [(f"p{p}-{n}", None) for n in range(30)] for p in (1, 2, 3)
    ]
    results = await claim_in_processes(database_url, coupon_id, crowds)
    keyed = [answer for crowd in results for answer in crowd[:20]]
    assert Counter(outcome for outcome, _ in keyed) == {"granted": 1, "replayed": 59}
    assert len({claim_id for _, claim_id in keyed}) == 1
    assert await check_ledger(pool, coupon_id, limit=1) == 1 + 90


async def test_sell_out_in_the_middle_of_a_batch_serves_arrival_order(
    pool: asyncpg.Pool,
) -> None:
    coupon_id = await new_coupon(pool, 10)
    outcomes = await asyncio.gather(
        *(claim_group_commit.claim(pool, coupon_id, ClaimRequest(f"u{n}")) for n in range(40)),
        return_exceptions=True,
    )
    granted = [o for o in outcomes if not isinstance(o, BaseException)]
    assert [g.claim.user_id for g in granted] == [f"u{n}" for n in range(10)]
    assert all(isinstance(o, SoldOut) for o in outcomes[10:])
    assert await check_ledger(pool, coupon_id, limit=1) == 10


async def test_a_failing_batch_fails_only_its_own_claims(pool: asyncpg.Pool) -> None:
    await pool.execute(
        """CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
               IF NEW.user_id = 'poison' THEN RAISE EXCEPTION 'injected'; END IF;
               RETURN NEW;
           END $$;
           CREATE TRIGGER refuse_poison BEFORE INSERT ON claim
               FOR EACH ROW EXECUTE FUNCTION refuse_poison();"""
    )
    coupon_id = await new_coupon(pool, 1_000)
    size = claim_group_commit.committer(pool).max_batch
    users = [f"u{n}" for n in range(2 * size)]
    users[size + 3] = "poison"
    outcomes = await asyncio.gather(
        *(claim_group_commit.claim(pool, coupon_id, ClaimRequest(u)) for u in users),
        return_exceptions=True,
    )
    assert not any(isinstance(o, BaseException) for o in outcomes[:size])
    assert all(isinstance(o, DatabaseUnavailable) for o in outcomes[size:])
    assert await check_ledger(pool, coupon_id, limit=1) == size
