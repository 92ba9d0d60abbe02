"""claim_coupons_v1 called directly with arrays: the contract a group-commit batcher relies on.

One row per element, in input order; grants in arrival order until sold out; the per-user
limit counts earlier grants of the same call; keys replay within a call and across calls.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import msgspec
import pytest

from couponapi import claims
from couponapi.claims import ClaimRequest, claim_arguments
from couponapi.db.queries import query
from couponapi.strategies import claim_function


async def new_coupon(pool: asyncpg.Pool, quantity: int, **columns: Any) -> UUID:
    coupon_id = uuid4()
    names = ", ".join(["id", "type", "quantity", *columns])
    marks = ", ".join(f"${n}" for n in range(1, len(columns) + 4))
    await pool.execute(
        f"INSERT INTO coupon ({names}) VALUES ({marks})",
        coupon_id,
        "percent",
        quantity,
        *columns.values(),
    )
    return coupon_id


async def call(
    pool: asyncpg.Pool, coupon_id: UUID, *requests: ClaimRequest
) -> list[tuple[str, int, Any]]:
    rows = await pool.fetch(query("claim_coupons"), *claim_arguments(coupon_id, requests))
    assert [row["ord"] for row in rows] == list(range(1, len(requests) + 1))
    return [(r["outcome"], r["status"], msgspec.json.decode(r["body"])) for r in rows]


async def test_a_batch_grants_in_order_until_sold_out(pool: asyncpg.Pool) -> None:
    coupon_id = await new_coupon(pool, 2)
    answers = await call(pool, coupon_id, *(ClaimRequest(f"u{n}") for n in range(4)))
    assert [(outcome, status) for outcome, status, _ in answers] == [
        ("granted", 201), ("granted", 201), ("sold_out", 409), ("sold_out", 409),
    ]  # fmt: skip
    assert [body["user_id"] for _, _, body in answers[:2]] == ["u0", "u1"]
    assert answers[2][2] == {"outcome": "sold_out", "detail": f"coupon {coupon_id} has run out"}
    row = await pool.fetchrow(
        "SELECT quantity, total_quantity FROM coupon WHERE id = $1", coupon_id
    )
    assert row is not None
    assert (row["quantity"], row["total_quantity"]) == (0, 2)
    assert await pool.fetchval("SELECT count(*) FROM claim_event WHERE kind = 'granted'") == 2


async def test_the_limit_counts_earlier_grants_of_the_same_batch(pool: asyncpg.Pool) -> None:
    coupon_id = await new_coupon(pool, 10, per_user_limit=2)
    answers = await call(pool, coupon_id, *(ClaimRequest("same") for _ in range(3)))
    assert [outcome for outcome, _, _ in answers] == ["granted", "granted", "limit_reached"]
    later = await call(pool, coupon_id, ClaimRequest("same"), ClaimRequest("other"))
    assert [outcome for outcome, _, _ in later] == ["limit_reached", "granted"]


async def test_keys_replay_within_a_batch_and_across_calls(pool: asyncpg.Pool) -> None:
    coupon_id = await new_coupon(pool, 1)
    answers = await call(
        pool,
        coupon_id,
        ClaimRequest("a", "k1"),
        ClaimRequest("a", "k1"),
        ClaimRequest("b", "k1"),
        ClaimRequest("b", "k2"),
    )
    assert [(o, s) for o, s, _ in answers] == [
        ("granted", 201), ("replayed", 201), ("key_conflict", 422), ("sold_out", 409),
    ]  # fmt: skip
    assert answers[1][2] == answers[0][2]
    again = await call(pool, coupon_id, ClaimRequest("b", "k2"), ClaimRequest("a", "k1"))
    assert again == [("replayed", 409, answers[3][2]), ("replayed", 201, answers[0][2])]
    assert await pool.fetchval("SELECT count(*) FROM claim") == 1
    stored = await pool.fetch("SELECT key, status FROM idempotency_key ORDER BY key")
    assert [(r["key"], r["status"]) for r in stored] == [("k1", 201), ("k2", 409)]


async def test_window_pause_and_unknown_coupon(pool: asyncpg.Pool) -> None:
    now = datetime.now(UTC)
    later = await new_coupon(pool, 5, starts_at=now + timedelta(hours=1))
    ended = await new_coupon(pool, 5, ends_at=now - timedelta(seconds=1))
    paused = await new_coupon(pool, 5, paused=True)
    for coupon_id in (later, ended, paused):
        assert [o for o, _, _ in await call(pool, coupon_id, ClaimRequest("u"))] == ["not_active"]
    assert (await call(pool, uuid4(), ClaimRequest("u", "k")))[0][:2] == ("not_found", 404)
    assert await pool.fetchval("SELECT count(*) FROM claim") == 0


async def test_an_expired_key_is_forgotten(pool: asyncpg.Pool) -> None:
    coupon_id = await new_coupon(pool, 5, per_user_limit=5)
    first = await call(pool, coupon_id, ClaimRequest("u", "old"))
    await pool.execute("UPDATE idempotency_key SET created_at = now() - interval '25 hours'")
    second = await call(pool, coupon_id, ClaimRequest("u", "old"))
    assert [first[0][0], second[0][0]] == ["granted", "granted"]
    assert first[0][2]["id"] != second[0][2]["id"]


async def test_a_code_collision_is_retried_with_a_fresh_code(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    coupon_id = await new_coupon(pool, 5, per_user_limit=5)
    taken = (await claim_function.claim(pool, coupon_id, ClaimRequest("a"))).claim.code
    codes = iter([taken, "ZZZZ-ZZZZ-ZZZZ"])
    monkeypatch.setattr(claims, "new_code", lambda: next(codes))
    again = await claim_function.claim(pool, coupon_id, ClaimRequest("a", "key"))
    assert again.claim.code == "ZZZZ-ZZZZ-ZZZZ"
    assert await pool.fetchval("SELECT count(*) FROM claim") == 2
    assert await pool.fetchval("SELECT count(*) FROM claim_event") == 2
    assert await pool.fetchval("SELECT status FROM idempotency_key") == 201
