"""claim_coupons_v1 called directly with arrays: the contract a group-commit batcher relies on.

One row per element, in input order; grants in arrival order until sold out; the per-user
limit counts earlier grants of the same call; keys replay within a call and across calls.
Since migration 0004 the function is set-based: a refusal without a key takes no lock and
writes nothing, and random batches get exactly the answers the loop of 0002 gave.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import msgspec
import pytest

from couponapi.db.migrate import function_as_created
from couponapi.db.queries import query
from couponapi.domain import claims
from couponapi.domain.claims import ClaimRequest, claim_arguments
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
    monkeypatch.setattr(claims, "new_codes", lambda count: [next(codes) for _ in range(count)])
    again = await claim_function.claim(pool, coupon_id, ClaimRequest("a", "key"))
    assert again.claim.code == "ZZZZ-ZZZZ-ZZZZ"
    assert await pool.fetchval("SELECT count(*) FROM claim") == 2
    assert await pool.fetchval("SELECT count(*) FROM claim_event") == 2
    assert await pool.fetchval("SELECT status FROM idempotency_key") == 201


# Refusals without a key: answered from a plain read (migration 0004), no lock, no write.


async def test_a_refusal_without_a_key_takes_no_lock_and_writes_nothing(
    pool: asyncpg.Pool,
) -> None:
    sold_out = await new_coupon(pool, 0)
    paused = await new_coupon(pool, 5, paused=True)
    unknown = uuid4()
    claimable = await new_coupon(pool, 5)
    expected = {
        sold_out: ("sold_out", 409, f"coupon {sold_out} has run out"),
        paused: ("not_active", 409, f"coupon {paused} is paused"),
        unknown: ("not_found", 404, f"coupon {unknown} not found"),
    }
    requests = [ClaimRequest("a"), ClaimRequest("b"), ClaimRequest("a")]
    async with pool.acquire() as holder, pool.acquire() as caller:
        await caller.execute("SET lock_timeout = '200ms'")  # a lock attempt fails fast
        async with holder.transaction():
            for coupon_id in (sold_out, paused, claimable):
                await holder.execute("SELECT 1 FROM coupon WHERE id = $1 FOR UPDATE", coupon_id)
            for coupon_id, (outcome, status, detail) in expected.items():
                row_version = "SELECT xmin::text, xmax::text FROM coupon WHERE id = $1"
                before = await pool.fetchrow(row_version, coupon_id)
                async with caller.transaction():
                    rows = await caller.fetch(
                        query("claim_coupons"), *claim_arguments(coupon_id, requests)
                    )
                    assert await caller.fetchval("SELECT txid_current_if_assigned()") is None
                assert await pool.fetchrow(row_version, coupon_id) == before
                answer = (outcome, status, {"outcome": outcome, "detail": detail})
                assert [
                    (r["outcome"], r["status"], msgspec.json.decode(r["body"])) for r in rows
                ] == [answer] * len(requests)
            # The same call on a coupon that can be claimed does wait for the row lock.
            with pytest.raises(asyncpg.LockNotAvailableError):
                await caller.fetch(query("claim_coupons"), *claim_arguments(claimable, requests))
    assert await pool.fetchval("SELECT count(*) FROM claim") == 0
    assert await pool.fetchval("SELECT count(*) FROM idempotency_key") == 0


async def test_a_keyed_refusal_is_stored_and_replayed(pool: asyncpg.Pool) -> None:
    coupon_id = await new_coupon(pool, 0)
    sold_out = {"outcome": "sold_out", "detail": f"coupon {coupon_id} has run out"}
    first = await call(pool, coupon_id, ClaimRequest("a", "k"), ClaimRequest("b"))
    assert first == [("sold_out", 409, sold_out)] * 2
    stored = await pool.fetchrow("SELECT status, body FROM idempotency_key WHERE key = 'k'")
    assert stored is not None
    assert (stored["status"], msgspec.json.decode(stored["body"])) == (409, sold_out)
    # Restocked since: the key still answers what it answered first.
    await pool.execute(
        "UPDATE coupon SET total_quantity = 1, quantity = 1 WHERE id = $1", coupon_id
    )
    again = await call(pool, coupon_id, ClaimRequest("a", "k"), ClaimRequest("b"))
    assert [a[:2] for a in again] == [("replayed", 409), ("granted", 201)]
    assert again[0][2] == sold_out


# The set-based function against the loop it replaced (0002's claim_coupons_v1, loaded under
# another name): the same random batches on two identical coupons give the same answers.

REFERENCE = "claim_coupons_v1_reference"
USERS = [f"u{n}" for n in range(5)]
KEYS = [f"k{n}" for n in range(6)]


def reference_definition() -> str:
    """claim_coupons_v1 exactly as migration 0002 created it, renamed REFERENCE."""
    return function_as_created("0002_current_api", "claim_coupons_v1", REFERENCE)


class Side:
    """One coupon and the function that claims it; keys and codes are prefixed per side."""

    def __init__(self, name: str, function: str, coupon_id: UUID) -> None:
        self.name, self.function, self.coupon_id = name, function, coupon_id
        self.granted: list[UUID] = []  # every claim granted, in order
        self.codes = 0

    async def claim(
        self, pool: asyncpg.Pool, batch: list[tuple[str, str | None]], now: datetime
    ) -> list[tuple[str, int, Any]]:
        keys = [f"{self.name}:{key}" if key else None for _, key in batch]
        hashes = [claims.request_hash(self.coupon_id, user) if key else None for user, key in batch]
        codes = [f"{self.name}-{self.codes + n}" for n in range(len(batch))]
        self.codes += len(batch)
        rows = await pool.fetch(
            f"SELECT ord, outcome, status, body FROM {self.function}"
            "($1::uuid, $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz)",
            self.coupon_id, [user for user, _ in batch], codes, keys, hashes, now,
        )  # fmt: skip
        assert [row["ord"] for row in rows] == list(range(1, len(batch) + 1))
        answers = []
        for row, code in zip(rows, codes, strict=True):
            body = msgspec.json.decode(row["body"])
            if row["outcome"] == "granted":
                assert body["code"] == code
                self.granted.append(UUID(body["id"]))
            answers.append((row["outcome"], row["status"], self.comparable(body)))
        return answers

    def comparable(self, body: Any) -> Any:
        """The body without what differs by nature between the sides (ids, codes, coupon)."""
        document = {k: v for k, v in body.items() if k not in ("id", "code")}
        if "coupon_id" in document:
            document["coupon_id"] = "C"
        if "detail" in document:
            document["detail"] = document["detail"].replace(str(self.coupon_id), "C")
        return document

    async def books(self, pool: asyncpg.Pool) -> dict[str, Any]:
        """What the database holds for this side, comparable with the other side's."""
        coupon = await pool.fetchval("SELECT quantity FROM coupon WHERE id = $1", self.coupon_id)
        held = await pool.fetch(
            "SELECT user_id, status FROM claim WHERE coupon_id = $1", self.coupon_id
        )
        events = await pool.fetch(
            "SELECT e.kind, e.user_id FROM claim_event AS e JOIN claim AS c ON c.id = e.claim_id"
            " WHERE c.coupon_id = $1 ORDER BY e.id",
            self.coupon_id,
        )
        keys = await pool.fetch(
            "SELECT key, status, body FROM idempotency_key WHERE key LIKE $1 ORDER BY key",
            f"{self.name}:%",
        )
        return {
            "quantity": coupon,
            "claims": sorted((r["user_id"], r["status"]) for r in held),
            "events": [tuple(r) for r in events],
            "keys": [
                (
                    r["key"].split(":", 1)[1],
                    r["status"],
                    self.comparable(msgspec.json.decode(r["body"])),
                )
                for r in keys
            ],
        }


async def test_the_set_based_function_answers_as_the_loop_did(pool: asyncpg.Pool) -> None:
    await pool.execute(reference_definition())
    rng = random.Random(4)
    seen: Counter[str] = Counter()
    start = datetime(2030, 1, 1, tzinfo=UTC)
    for round_ in range(50):
        kind = rng.choices(["open", "paused", "window", "unknown"], weights=[7, 1, 1, 1])[0]
        columns: dict[str, Any] = {"per_user_limit": rng.choice([1, 2, 2, 3])}
        if kind == "paused":
            columns["paused"] = True
        if kind == "window":
            columns.update(
                starts_at=start + timedelta(hours=30), ends_at=start + timedelta(hours=80)
            )
        quantity = rng.randint(0, 8)
        if kind == "unknown":
            coupons = [uuid4(), uuid4()]
        else:
            coupons = [await new_coupon(pool, quantity, **columns) for _ in range(2)]
        sides = [
            Side(f"ref{round_}", REFERENCE, coupons[0]),
            Side(f"new{round_}", "claim_coupons_v1", coupons[1]),
        ]
        now = start
        for _ in range(6):
            batch = [
                (rng.choice(USERS), rng.choice(KEYS) if rng.random() < 0.5 else None)
                for _ in range(rng.randint(1, 12))
            ]
            reference, new = [await side.claim(pool, batch, now) for side in sides]
            assert new == reference, (round_, batch)
            seen.update(outcome for outcome, _, _ in new)
            # Between batches: time passes (keys expire after 24 h, windows open and close),
            # and sometimes a claim is given back or the coupon paused or resumed.
            now += rng.choice([timedelta(0), timedelta(hours=1), timedelta(hours=25)])
            if sides[0].granted and rng.random() < 0.3:
                n = rng.randrange(len(sides[0].granted))
                released = [
                    await pool.fetchval("SELECT outcome FROM release_claim_v1($1)", s.granted[n])
                    for s in sides
                ]
                assert released[0] == released[1]
            if rng.random() < 0.1:
                await pool.execute(
                    "UPDATE coupon SET paused = NOT paused WHERE id = ANY ($1::uuid[])", coupons
                )
        assert await sides[1].books(pool) == await sides[0].books(pool)
        # Each granted answer is the claim row it names.
        granted = await pool.fetch("SELECT id FROM claim WHERE coupon_id = $1", coupons[1])
        assert sorted(r["id"] for r in granted) == sorted(sides[1].granted)
    # The random batches did reach every outcome.
    assert set(seen) == {
        "granted", "replayed", "sold_out", "limit_reached", "not_active", "not_found",
        "key_conflict",
    }  # fmt: skip
