"""One batch across coupons (claim_coupons_many_v1, give_coupons_many_v1) through the
group-commit strategies: arrival order per coupon, refusals without locks, and a failing
coupon's group failing alone."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from couponapi.domain import claims as domain_claims
from couponapi.domain import codes
from couponapi.domain.claims import ClaimRequest
from couponapi.domain.errors import CouponNotFound, DatabaseUnavailable, SoldOut
from couponapi.strategies import claim_group_commit, give_group_commit
from couponapi.strategies.batcher import BatchFailed
from tests.integration.test_v2_claim_function import new_coupon


def refuse_coupon(table: str, column: str, coupon_id: UUID) -> str:
    """A trigger that fails every insert into `table` for one coupon (a poisoned group)."""
    return f"""
CREATE FUNCTION refuse_coupon() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.{column}::text = '{coupon_id}' THEN
        RAISE EXCEPTION 'injected failure' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_coupon BEFORE INSERT ON {table}
    FOR EACH ROW EXECUTE FUNCTION refuse_coupon();"""


async def claim_all(pool: asyncpg.Pool, claims: Sequence[tuple[UUID, str]]) -> list[Any]:
    """Every claim at once, so they share one batch; each one's claim or error, in order."""
    return await asyncio.gather(
        *(claim_group_commit.claim(pool, c, ClaimRequest(user)) for c, user in claims),
        return_exceptions=True,
    )


async def left(pool: asyncpg.Pool, coupon_id: UUID) -> int:
    quantity: int = await pool.fetchval("SELECT quantity FROM coupon WHERE id = $1", coupon_id)
    return quantity


async def test_each_coupon_serves_arrival_order_and_sells_out_mid_batch(
    pool: asyncpg.Pool,
) -> None:
    a, b, c = [await new_coupon(pool, q) for q in (3, 2, 100)]
    claims = [(coupon, f"u{n}") for n in range(8) for coupon in (c, a, b)]
    results = await claim_all(pool, claims)
    granted = {
        coupon: [r.claim.user_id for (x, _), r in zip(claims, results, strict=True)
                 if x == coupon and not isinstance(r, BaseException)]
        for coupon in (a, b, c)
    }  # fmt: skip
    assert granted == {a: ["u0", "u1", "u2"], b: ["u0", "u1"], c: [f"u{n}" for n in range(8)]}
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(refused) == 5 + 6
    assert all(isinstance(r, SoldOut) for r in refused)
    for r, (coupon, user) in zip(results, claims, strict=True):
        if not isinstance(r, BaseException):
            assert (r.claim.coupon_id, r.claim.user_id) == (coupon, user)
    assert [await left(pool, x) for x in (a, b, c)] == [0, 0, 92]


async def test_one_failing_coupon_fails_only_its_own_claims(pool: asyncpg.Pool) -> None:
    good, bad, other = [await new_coupon(pool, 100) for _ in range(3)]
    await pool.execute(refuse_coupon("claim", "coupon_id", bad))
    claims = [(coupon, f"u{n}") for n in range(10) for coupon in (good, bad, other)]
    results = await claim_all(pool, claims)
    for (coupon, _), result in zip(claims, results, strict=True):
        if coupon == bad:
            assert isinstance(result, DatabaseUnavailable)
            assert isinstance(result.__cause__, BatchFailed)
            assert "group commit of 10 requests for" in str(result.__cause__)
            assert isinstance(result.__cause__.__cause__, asyncpg.CheckViolationError)
        else:
            assert not isinstance(result, BaseException)
    assert [await left(pool, x) for x in (good, bad, other)] == [90, 100, 90]
    assert await pool.fetchval("SELECT count(*) FROM claim WHERE coupon_id = $1", bad) == 0
    assert await pool.fetchval("SELECT count(*) FROM claim_event") == 20


async def test_v1_one_failing_coupon_fails_only_its_own_gives(pool: asyncpg.Pool) -> None:
    good, bad = [await new_coupon(pool, 100) for _ in range(2)]
    await pool.execute(refuse_coupon("coupon_given_events", "couponid", bad))
    gives = [(coupon, f"u{n}") for n in range(10) for coupon in (good, bad)]
    results = await asyncio.gather(
        *(give_group_commit.give(pool, c, u) for c, u in gives), return_exceptions=True
    )
    for (coupon, _), result in zip(gives, results, strict=True):
        if coupon == bad:
            assert isinstance(result, DatabaseUnavailable)
            assert isinstance(result.__cause__, BatchFailed)
            assert isinstance(result.__cause__.__cause__, asyncpg.CheckViolationError)
        else:
            assert not isinstance(result, BaseException)
    assert [await left(pool, x) for x in (good, bad)] == [90, 100]
    assert await pool.fetchval("SELECT count(*) FROM coupon_given_events") == 10


async def test_a_code_collision_claims_its_group_again_with_fresh_codes(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken, quiet = [await new_coupon(pool, 10) for _ in range(2)]
    existing = await claim_group_commit.claim(pool, taken, ClaimRequest("first"))
    fresh = codes.new_codes
    calls: list[int] = []

    def colliding(count: int) -> list[str]:  # the first batch's second code is taken
        calls.append(count)
        codes = fresh(count)
        if len(calls) == 1:
            codes[1] = existing.claim.code
        return codes

    monkeypatch.setattr(domain_claims, "new_codes", colliding)
    claims = [(quiet, "a"), (taken, "b"), (taken, "c"), (quiet, "d")]
    results = await claim_all(pool, claims)
    assert not any(isinstance(r, BaseException) for r in results)
    assert [r.claim.user_id for r in results] == ["a", "b", "c", "d"]
    assert calls == [4, 2]  # the whole batch, then the collided coupon's group alone
    assert [await left(pool, x) for x in (taken, quiet)] == [7, 8]


async def test_refusals_in_a_mixed_batch_take_no_lock(pool: asyncpg.Pool) -> None:
    sold_out, open_ = await new_coupon(pool, 0), await new_coupon(pool, 5)
    unknown = uuid4()
    async with pool.acquire() as holder, holder.transaction():
        # Someone holds the sold-out coupon's row lock: a refusal that took it would wait
        # here until the 5 s guard, and the open coupon's claims with it.
        await holder.execute("SELECT 1 FROM coupon WHERE id = $1 FOR UPDATE", sold_out)
        claims = [(sold_out, "a"), (open_, "b"), (unknown, "c"), (open_, "d")]
        results = await asyncio.wait_for(claim_all(pool, claims), timeout=5)
    assert [type(r) for r in results[::2]] == [SoldOut, CouponNotFound]
    assert [r.claim.user_id for r in results[1::2]] == ["b", "d"]


async def test_a_lock_timeout_on_one_coupon_fails_only_its_group(database_url: str) -> None:
    settings = {"lock_timeout": "300"}
    async with asyncpg.create_pool(database_url, server_settings=settings) as pool:
        held, free = await new_coupon(pool, 5), await new_coupon(pool, 5)
        async with pool.acquire() as holder, holder.transaction():
            await holder.execute("SELECT 1 FROM coupon WHERE id = $1 FOR UPDATE", held)
            results = await claim_all(pool, [(held, "a"), (free, "b"), (held, "c")])
        # Transient, so raised as it would be one claim at a time (503 + Retry-After).
        assert all(isinstance(r, asyncpg.LockNotAvailableError) for r in results[::2])
        assert not isinstance(results[1], BaseException)
        assert [await left(pool, x) for x in (held, free)] == [5, 4]
