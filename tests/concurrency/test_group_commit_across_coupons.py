"""Group commit across coupons under real concurrency: several OS processes, each batching its
own crowd over many coupons through one lane, against the same coupons; the database is
checked afterwards, coupon by coupon."""

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

from tests.integration.test_v2_claim_function import new_coupon

pytestmark = pytest.mark.concurrency

Result = tuple[str, str | None]
Crowd = Sequence[tuple[UUID, str, str | None]]


async def claim_in_processes(
    url: str, strategy: str, crowds: Sequence[Crowd], rounds: int = 1
) -> list[list[Result]]:
    """Each crowd in its own process (tests.concurrency.many_claimer), all processes at once;
    results per crowd, in order, round after round."""

    async def run(crowd: Crowd) -> list[Result]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.concurrency.many_claimer", url, strategy, str(rounds),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env={**os.environ},
        )  # fmt: skip
        out, _ = await process.communicate(msgspec.json.encode(crowd))
        assert process.returncode == 0
        return [(outcome, claim_id) for outcome, claim_id in msgspec.json.decode(out)]

    return list(await asyncio.gather(*(run(crowd) for crowd in crowds)))


V2_BOOKS = """
SELECT c.id, c.total_quantity, c.quantity, c.total_quantity - c.quantity AS consumed,
       (SELECT count(*) FROM claim WHERE coupon_id = c.id) AS claims,
       (SELECT count(*) FROM claim_event WHERE coupon_id = c.id AND kind = 'granted') AS ledger,
       (SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM claim
         WHERE coupon_id = c.id GROUP BY user_id) AS per_user) AS most,
       c.per_user_limit
  FROM coupon c WHERE c.id = ANY($1)"""

V1_BOOKS = """
SELECT c.id, c.total_quantity, c.quantity, c.total_quantity - c.quantity AS consumed,
       (SELECT count(*) FROM coupon_given_events WHERE couponid = c.id::text) AS claims,
       (SELECT count(*) FROM coupon_given_events WHERE couponid = c.id::text) AS ledger,
       0 AS most, 1 AS per_user_limit
  FROM coupon c WHERE c.id = ANY($1)"""


async def check_books(pool: asyncpg.Pool, coupons: Sequence[UUID], api: str = "v2") -> int:
    """Per coupon: granted == quantity consumed == ledger rows, never more than it has, nobody
    over the per-user limit. Returns the grants over all of `coupons`."""
    rows = await pool.fetch(V2_BOOKS if api == "v2" else V1_BOOKS, list(coupons))
    assert len(rows) == len(coupons)
    for row in rows:
        assert row["consumed"] == row["claims"] == row["ledger"], dict(row)
        assert 0 <= row["quantity"] <= row["total_quantity"]
        assert row["most"] <= row["per_user_limit"], dict(row)
    return sum(row["claims"] for row in rows)


async def quantities_left(pool: asyncpg.Pool, coupons: Sequence[UUID]) -> dict[UUID, int]:
    rows = await pool.fetch("SELECT id, quantity FROM coupon WHERE id = ANY($1)", list(coupons))
    return {row["id"]: row["quantity"] for row in rows}


async def test_many_processes_over_many_coupons_keep_every_rule(
    database_url: str, pool: asyncpg.Pool
) -> None:
    # 40 coupons: every fourth has 5 to give (sells out, often in the middle of a batch),
    # the others 1,000; each with a per-user limit of 2. Five keys, each always sent for the
    # same user and coupon, from every process.
    quantities = [5 if n % 4 == 0 else 1_000 for n in range(40)]
    coupons = [await new_coupon(pool, q, per_user_limit=2) for q in quantities]
    keyed = [(coupons[1 + 4 * j], f"keyed-{j}", f"key-{j}") for j in range(5)]

    def crowd(p: int) -> list[tuple[UUID, str, str | None]]:
        claims: list[tuple[UUID, str, str | None]] = []
        for n in range(300):
            if n % 10 == 0:
                claims.append(keyed[(n // 10 + p) % 5])
            else:
                claims.append((coupons[(7 * n + p) % 40], f"u{(n + 3 * p) % 50}", None))
        return claims

    crowds = [crowd(p) for p in range(4)]
    results = await claim_in_processes(database_url, "v2", crowds)
    outcomes = Counter(outcome for answers in results for outcome, _ in answers)
    assert set(outcomes) <= {"granted", "replayed", "SoldOut", "LimitReached"}, outcomes
    granted = await check_books(pool, coupons)
    assert outcomes["granted"] == granted
    # The small coupons were wanted by more users than they had: each sold out exactly.
    left = await quantities_left(pool, coupons)
    assert all(left[c] == 0 for c, q in zip(coupons, quantities, strict=True) if q == 5)
    # Every answer to a key is the same claim, granted once.
    for coupon_id, user, key in keyed:
        answers = [
            answer
            for claims, answers_of in zip(crowds, results, strict=True)
            for claim, answer in zip(claims, answers_of, strict=True)
            if claim == (coupon_id, user, key)
        ]
        assert len(answers) == 4 * 6  # each process sends each key 6 times
        assert Counter(outcome for outcome, _ in answers) == {"granted": 1, "replayed": 23}
        assert len({claim_id for _, claim_id in answers}) == 1
    answered = {cid for answers in results for outcome, cid in answers if outcome == "granted"}
    stored = {str(r["id"]) for r in await pool.fetch("SELECT id FROM claim")}
    assert answered == stored


@pytest.mark.parametrize("api", ["v2", "v1"])
async def test_batches_sharing_coupons_in_opposite_orders_never_deadlock(
    database_url: str, pool: asyncpg.Pool, api: str
) -> None:
    # Two processes, each sending batches of 2 claims on each of 20 coupons, one in ascending
    # arrival order, the other in descending, 40 rounds each. Were coupon rows locked in
    # arrival order, every overlapping pair of batches would deadlock (PostgreSQL's detector
    # then fails one group, answered 503) or wait out the 5 s lock_timeout.
    coupons = [await new_coupon(pool, 10_000, per_user_limit=1_000) for _ in range(20)]
    forward = [(c, f"u{n}", None) for c in coupons for n in range(2)]
    rounds = 40
    results = await claim_in_processes(database_url, api, [forward, forward[::-1]], rounds=rounds)
    outcomes = Counter(outcome for answers in results for outcome, _ in answers)
    assert outcomes == {"granted": 2 * len(forward) * rounds}
    assert await check_books(pool, coupons, api) == 2 * len(forward) * rounds


async def test_v1_many_processes_over_many_coupons_sell_out_exactly(
    database_url: str, pool: asyncpg.Pool
) -> None:
    quantities = [3 if n % 3 == 0 else 500 for n in range(30)]
    coupons = []
    for quantity in quantities:
        coupon_id = await new_coupon(pool, quantity)
        coupons.append(coupon_id)
    crowds = [
        [(coupons[(7 * n + p) % 30], f"p{p}-{n}", None) for n in range(200)] for p in range(4)
    ]
    results = await claim_in_processes(database_url, "v1", crowds)
    outcomes = Counter(outcome for answers in results for outcome, _ in answers)
    assert set(outcomes) <= {"granted", "SoldOut"}, outcomes
    assert await check_books(pool, coupons, "v1") == outcomes["granted"]
    left = await quantities_left(pool, coupons)
    assert all(left[c] == 0 for c, q in zip(coupons, quantities, strict=True) if q == 3)
