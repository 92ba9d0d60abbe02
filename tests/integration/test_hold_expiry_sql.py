"""Expiry at the instant, in PostgreSQL: claim_coupons_v2, release_claim_v2, redeem_claim_v2
and change_coupon_v1 called with an explicit `p_now`, no sweeper anywhere, so each test says
exactly when it is. A hold due one millisecond ago gives its unit and frees its user's limit
at once; one still running does neither; every expiry writes its ledger row once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import msgspec
import pytest

from couponapi.db.queries import query
from couponapi.domain.claims import ClaimRequest, claim_arguments
from couponapi.services import audit
from tests.v2_support import claim_state

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
MS = timedelta(milliseconds=1)
CLAIM_AT = """SELECT ord, outcome, status, body
              FROM claim_coupons_v2($1::uuid, $2::text[], $3::text[], $4::text[], $5::text[], $6)"""


async def new_coupon(pool: asyncpg.Pool, quantity: int, hold: int | None, limit: int = 1) -> UUID:
    coupon_id = uuid4()
    await pool.execute(
        "INSERT INTO coupon (id, type, quantity, per_user_limit, hold_seconds)"
        " VALUES ($1, 'percent', $2, $3, $4)",
        coupon_id, quantity, limit, hold,
    )  # fmt: skip
    return coupon_id


async def claim_at(
    pool: asyncpg.Pool, coupon_id: UUID, at: datetime, *users: str
) -> list[tuple[str, dict[str, Any]]]:
    requests = [ClaimRequest(user) for user in users]
    rows = await pool.fetch(CLAIM_AT, *claim_arguments(coupon_id, requests), at)
    return [(row["outcome"], msgspec.json.decode(row["body"])) for row in rows]


async def test_a_claim_carries_expires_at_and_one_without_a_hold_none(pool: asyncpg.Pool) -> None:
    held = await new_coupon(pool, 1, hold=90)
    forever = await new_coupon(pool, 1, hold=None)
    [(outcome, body)] = await claim_at(pool, held, T0, "alice")
    assert (outcome, body["expires_at"]) == ("granted", "2030-01-01T12:01:30.000000Z")
    [(outcome, body)] = await claim_at(pool, forever, T0, "alice")
    assert (outcome, body["expires_at"]) == ("granted", None)
    stored = await pool.fetchval("SELECT expires_at FROM claim WHERE coupon_id = $1", held)
    assert stored == T0 + timedelta(seconds=90)


async def test_one_millisecond_after_expiry_the_unit_is_claimable(pool: asyncpg.Pool) -> None:
    coupon_id = await new_coupon(pool, 1, hold=60)
    assert [o for o, _ in await claim_at(pool, coupon_id, T0, "alice")] == ["granted"]
    expiry = T0 + timedelta(seconds=60)
    # A millisecond before its end the hold still has the unit ([claimed_at, expires_at))...
    assert [o for o, _ in await claim_at(pool, coupon_id, expiry - MS, "bob")] == ["sold_out"]
    # ... and a millisecond later bob takes the unit, with no sweeper having run.
    assert [o for o, _ in await claim_at(pool, coupon_id, expiry + MS, "bob")] == ["granted"]
    rows = await pool.fetch("SELECT user_id, status FROM claim ORDER BY claimed_at")
    statuses = {row["user_id"]: row["status"] for row in rows}
    assert statuses == {"alice": "expired", "bob": "claimed"}
    kinds = await pool.fetch(
        "SELECT user_id, kind, occurred_at FROM claim_event WHERE coupon_id = $1 ORDER BY id",
        coupon_id,
    )
    assert [(r["user_id"], r["kind"]) for r in kinds] == [
        ("alice", "granted"), ("alice", "expired"), ("bob", "granted"),
    ]  # fmt: skip
    assert kinds[1]["occurred_at"] == expiry  # when the hold ended, not when it was noticed
    state = await claim_state(pool, coupon_id)
    state.check()
    assert (state.remaining, state.live_claims, state.expired) == (0, 1, 1)


async def test_a_user_at_the_limit_claims_again_once_the_hold_expired(pool: asyncpg.Pool) -> None:
    coupon_id = await new_coupon(pool, 10, hold=30, limit=2)
    assert [o for o, _ in await claim_at(pool, coupon_id, T0, "alice", "alice")] == [
        "granted", "granted",
    ]  # fmt: skip
    later = T0 + timedelta(seconds=29)
    assert [o for o, _ in await claim_at(pool, coupon_id, later, "alice")] == ["limit_reached"]
    after = T0 + timedelta(seconds=30) + MS
    # Both of her holds are over: she may hold two again, and no more.
    outcomes = [o for o, _ in await claim_at(pool, coupon_id, after, "alice", "alice", "alice")]
    assert outcomes == ["granted", "granted", "limit_reached"]
    state = await claim_state(pool, coupon_id)
    state.check()
    assert (state.remaining, state.live_claims, state.expired) == (8, 2, 2)


async def test_a_batch_takes_only_the_due_holds_it_needs(pool: asyncpg.Pool) -> None:
    coupon_id = await new_coupon(pool, 5, hold=10)
    await claim_at(pool, coupon_id, T0, *(f"u{n}" for n in range(5)))
    after = T0 + timedelta(seconds=11)
    assert [o for o, _ in await claim_at(pool, coupon_id, after, "a", "b")] == ["granted"] * 2
    # Two expired to make room; the other three are due, unmarked, and counted as left.
    rows = await pool.fetch(
        "SELECT status, count(*) AS n FROM claim WHERE coupon_id = $1 GROUP BY status", coupon_id
    )
    counts = {row["status"]: row["n"] for row in rows}
    assert counts == {"expired": 2, "claimed": 5}
    assert await pool.fetchval("SELECT due_holds_v1($1, $2)", coupon_id, after) == 3


async def test_redeem_and_release_of_an_expired_hold_are_refused(pool: asyncpg.Pool) -> None:
    coupon_id = await new_coupon(pool, 2, hold=5)
    [(_, first), (_, second)] = await claim_at(pool, coupon_id, T0, "alice", "bob")
    after = T0 + timedelta(seconds=5) + MS
    redeem = "SELECT outcome FROM redeem_claim_v2($1, $2)"
    release = "SELECT outcome FROM release_claim_v2($1, $2)"
    assert await pool.fetchval(redeem, first["code"], after - 2 * MS) == "redeemed"
    assert await pool.fetchval(redeem, second["code"], after) == "expired"
    # The redemption wrote nothing: the hold is due, still unmarked.
    assert await pool.fetchval("SELECT status FROM claim WHERE code = $1", second["code"]) == (
        "claimed"
    )
    # The release marks it (it holds both locks the sweeper takes), once.
    assert await pool.fetchval(release, UUID(second["id"]), after) == "expired"
    assert await pool.fetchval(release, UUID(second["id"]), after) == "expired"
    assert await pool.fetchval(release, UUID(first["id"]), after) == "already_redeemed"
    state = await claim_state(pool, coupon_id)
    state.check()
    assert (state.remaining, state.redeemed, state.expired) == (1, 1, 1)


async def test_a_quantity_cut_counts_due_holds_as_given_back(pool: asyncpg.Pool) -> None:
    coupon_id = await new_coupon(pool, 4, hold=10)
    await claim_at(pool, coupon_id, T0, "a", "b", "c", "d")
    change = (
        "SELECT change_coupon_v1($1, $2, false, NULL, false, NULL, NULL, NULL, false, NULL, $3)"
    )
    before = T0 + timedelta(seconds=9)
    with pytest.raises(asyncpg.CheckViolationError, match="coupon_quantity_not_negative"):
        await pool.fetchval(change, coupon_id, 1, before)
    assert await pool.fetchval("SELECT count(*) FROM claim_event WHERE kind = 'expired'") == 0
    after = T0 + timedelta(seconds=10) + MS
    assert await pool.fetchval(change, coupon_id, 1, after) == "changed"
    row = await pool.fetchrow(
        "SELECT total_quantity, quantity FROM coupon WHERE id = $1", coupon_id
    )
    assert row is not None
    # Three holds were expired to make the cut, the fourth is due and counted as left.
    assert (row["total_quantity"], row["quantity"]) == (1, 0)
    assert await pool.fetchval("SELECT due_holds_v1($1, $2)", coupon_id, after) == 1
    state = await claim_state(pool, coupon_id)
    state.check()
    assert state.expired == 3


async def test_a_shorter_hold_is_refused_while_a_claim_would_outlast_it(
    pool: asyncpg.Pool,
) -> None:
    coupon_id = await new_coupon(pool, 4, hold=600)
    await claim_at(pool, coupon_id, T0, "alice")
    change = "SELECT change_coupon_v1($1, NULL, false, NULL, false, NULL, NULL, NULL, true, $2, $3)"
    assert await pool.fetchval(change, coupon_id, 60, T0 + timedelta(seconds=1)) == "hold_shortens"
    assert await pool.fetchval("SELECT hold_seconds FROM coupon WHERE id = $1", coupon_id) == 600
    # Longer, or for ever: always. Shorter once the live hold ends within it: accepted too.
    assert await pool.fetchval(change, coupon_id, 900, T0) == "changed"
    assert await pool.fetchval(change, coupon_id, 60, T0 + timedelta(seconds=541)) == "changed"
    assert await pool.fetchval(change, coupon_id, None, T0) == "changed"
    assert await pool.fetchval("SELECT hold_seconds FROM coupon WHERE id = $1", coupon_id) is None
    # The granted hold was never moved.
    stored = await pool.fetchval("SELECT expires_at FROM claim WHERE coupon_id = $1", coupon_id)
    assert stored == T0 + timedelta(seconds=600)


async def test_the_sweeper_step_expires_once_and_balances_the_books(pool: asyncpg.Pool) -> None:
    coupon_id = await new_coupon(pool, 30, hold=1)
    start = datetime.now(UTC) - timedelta(seconds=5)
    await claim_at(pool, coupon_id, start, *(f"u{n}" for n in range(30)))
    found = await audit.audit(pool, coupon_id)
    assert (found.remaining, found.expired, found.expired_pending, found.conserved) == (
        30, 30, 30, True,
    )  # fmt: skip
    assert await pool.fetchval(query("sweep_holds"), coupon_id, 20) == 20
    assert await pool.fetchval(query("sweep_holds"), coupon_id, 20) == 10
    assert await pool.fetchval(query("sweep_holds"), coupon_id, 20) == 0
    found = await audit.audit(pool, coupon_id)
    assert (found.remaining, found.expired, found.expired_pending) == (30, 30, 0)
    assert (found.ledger.granted, found.ledger.expired, found.conserved) == (30, 30, True)
