"""Holds that expire, under real concurrency: a 2-process server (each worker running its
sweeper), parallel connections (aiohttp), and the books checked in the database afterwards.

Each race is timed against the holds' own expires_at: redeems, releases, claims and a PATCH
are fired around the instant the holds end, so some land before and some after, in every
interleaving the machine produces. Whatever lands where, a claim ends one way, no unit is
given twice or lost, and every expiry has exactly one ledger row.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial
from typing import Any
from uuid import UUID

import aiohttp
import asyncpg
import pytest

from couponapi.domain.audit import Audit
from couponapi.services import audit
from tests.support import RunningServer
from tests.v2_support import ADMIN, V2

pytestmark = pytest.mark.concurrency

Answer = tuple[int, dict[str, Any]]
SWEPT_S = 3.0  # the sweepers run every second: after this, every expiry has its row


async def call(http: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> Answer:
    async with http.request(method, url, json=body, headers=ADMIN) as response:
        return response.status, await response.json(content_type=None)


async def new_coupon(
    http: aiohttp.ClientSession, server: RunningServer, quantity: int, hold: int
) -> UUID:
    body = {"name": "holds", "type": "percent", "quantity": quantity, "hold_seconds": hold}
    status, coupon = await call(http, "POST", f"{server.base_url}{V2}/coupons", body)
    assert status == 201, coupon
    return UUID(coupon["id"])


async def claim(
    http: aiohttp.ClientSession, server: RunningServer, coupon_id: UUID, user: str
) -> Answer:
    url = f"{server.base_url}{V2}/coupons/{coupon_id}/claims"
    return await call(http, "POST", url, {"user_id": user})


async def claim_all(
    http: aiohttp.ClientSession, server: RunningServer, coupon_id: UUID, users: int
) -> list[dict[str, Any]]:
    answers = await asyncio.gather(*(claim(http, server, coupon_id, f"u{n}") for n in range(users)))
    assert Counter(status for status, _ in answers) == {201: users}
    return [body for _, body in answers]


async def at(when: datetime, action: Callable[[], Awaitable[Answer]]) -> Answer:
    """`action` fired at the wall-clock instant `when`."""
    await asyncio.sleep(max(0.0, when.timestamp() - time.time()))
    return await action()


def around(expires_at: str, spread_s: float = 0.05) -> datetime:
    """An instant within `spread_s` of a hold's end, either side."""
    end = datetime.fromisoformat(expires_at).timestamp()
    return datetime.fromtimestamp(end + random.uniform(-spread_s, spread_s))


async def endings(pool: asyncpg.Pool, coupon_id: UUID) -> dict[UUID, list[str]]:
    """Each claim's ledger rows after its grant, in order."""
    rows = await pool.fetch(
        "SELECT claim_id, kind FROM claim_event WHERE coupon_id = $1 AND kind <> 'granted'"
        " ORDER BY id",
        coupon_id,
    )
    found: dict[UUID, list[str]] = {}
    for row in rows:
        found.setdefault(row["claim_id"], []).append(row["kind"])
    return found


async def swept_books(pool: asyncpg.Pool, coupon_id: UUID) -> Audit:
    """The coupon's audit once the sweepers wrote every expiry's row."""
    await asyncio.sleep(SWEPT_S)
    books = await audit.audit(pool, coupon_id)
    assert books.problems == []
    assert books.expired_pending == 0
    return books


async def test_a_crowd_claiming_while_holds_expire_never_holds_more_than_exists(
    server: RunningServer, http: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    coupon_id = await new_coupon(http, server, quantity=20, hold=1)
    stop = time.monotonic() + 4.0
    statuses: Counter[int] = Counter()
    samples: list[Audit] = []
    users = iter(range(1_000_000))

    async def claimer() -> None:
        while time.monotonic() < stop:
            status, _ = await claim(http, server, coupon_id, f"crowd-{next(users)}")
            statuses[status] += 1

    async def sampler() -> None:
        while time.monotonic() < stop:
            samples.append(await audit.audit(pool, coupon_id))
            await asyncio.sleep(0.02)

    await asyncio.gather(*(claimer() for _ in range(40)), sampler())
    assert len(samples) > 20  # every 20 ms for 4 s, fewer when the 2 cores are busy
    for books in samples:  # one snapshot each: never more live than exists, nothing lost
        assert books.live <= books.quantity == 20
        assert books.problems == []
    books = await swept_books(pool, coupon_id)
    # The units came back and went out again: many more grants than units, each answered.
    assert statuses[201] == books.claims == books.ledger.granted > 40
    assert set(statuses) <= {201, 409}
    assert books.quantity == books.remaining + books.live
    assert books.ledger.expired == books.expired == books.claims - books.held


async def test_redeems_racing_their_expiry_end_one_way(
    server: RunningServer, http: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    coupon_id = await new_coupon(http, server, quantity=100, hold=1)
    claims = await claim_all(http, server, coupon_id, 100)
    redeem_url = f"{server.base_url}{V2}/claims/redeem"

    def redeem(code: str) -> Callable[[], Awaitable[Answer]]:
        return lambda: call(http, "POST", redeem_url, {"code": code})

    answers = await asyncio.gather(
        *(at(around(c["expires_at"]), redeem(c["code"])) for c in claims)
    )
    told = Counter(status for status, _ in answers)
    assert set(told) <= {200, 409}
    assert {body["type"] for status, body in answers if status == 409} <= {"/problems/expired"}
    books = await swept_books(pool, coupon_id)
    assert (books.redeemed, books.expired) == (told[200], told[409])
    assert books.remaining == told[409]
    # Each claim has exactly one ending in the ledger: redeemed or expired, never both.
    ended = await endings(pool, coupon_id)
    assert len(ended) == 100
    assert Counter(tuple(kinds) for kinds in ended.values()) == {
        k: n for k, n in {("redeemed",): told[200], ("expired",): told[409]}.items() if n
    }


async def test_releases_racing_their_expiry_end_one_way(
    server: RunningServer, http: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    coupon_id = await new_coupon(http, server, quantity=100, hold=1)
    claims = await claim_all(http, server, coupon_id, 100)

    def release(claim_id: str) -> Callable[[], Awaitable[Answer]]:
        return lambda: call(http, "POST", f"{server.base_url}{V2}/claims/{claim_id}/release")

    answers = await asyncio.gather(*(at(around(c["expires_at"]), release(c["id"])) for c in claims))
    told = Counter(status for status, _ in answers)
    assert set(told) <= {200, 409}
    assert {body["type"] for status, body in answers if status == 409} <= {"/problems/expired"}
    books = await swept_books(pool, coupon_id)
    assert (books.released, books.expired, books.remaining) == (told[200], told[409], 100)
    ended = await endings(pool, coupon_id)
    assert sorted(len(kinds) for kinds in ended.values()) == [1] * 100


async def test_a_quantity_cut_racing_expiry_loses_and_overgrants_nothing(
    server: RunningServer, http: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    for round_ in range(3):
        coupon_id = await new_coupon(http, server, quantity=50, hold=1)
        claims = await claim_all(http, server, coupon_id, 50)
        url = f"{server.base_url}{V2}/coupons/{coupon_id}"
        end = max(c["expires_at"] for c in claims)  # the last old hold (ISO UTC: sortable)

        cut = partial(call, http, "PATCH", url, {"quantity": 20})
        newcomers = [
            partial(claim, http, server, coupon_id, f"late-{round_}-{n}") for n in range(40)
        ]
        patched, *claimed = await asyncio.gather(
            at(around(end, 0.02), cut), *(at(around(end), late) for late in newcomers)
        )
        assert patched[0] in {200, 409}, patched
        # Audit just after the old holds ended (a newcomer may have been answered before
        # that instant, refused), and before the newcomers' holds end, a second later.
        await asyncio.sleep(max(0.0, datetime.fromisoformat(end).timestamp() - time.time()) + 0.05)
        now = await audit.audit(pool, coupon_id)
        granted = sum(1 for status, _ in claimed if status == 201)
        assert now.problems == []
        assert now.quantity == (20 if patched[0] == 200 else 50)
        assert now.live == now.held == granted <= now.quantity
        assert now.claims == 50 + granted
        books = await swept_books(pool, coupon_id)
        assert books.ledger.expired == books.expired == books.claims


async def test_a_user_at_the_limit_claims_again_once_the_hold_expired(
    server: RunningServer, http: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    coupon_id = await new_coupon(http, server, quantity=10, hold=1)
    status, first = await claim(http, server, coupon_id, "alice")
    assert status == 201
    status, body = await claim(http, server, coupon_id, "alice")
    assert (status, body["type"]) == (409, "/problems/limit-reached")
    end = datetime.fromisoformat(first["expires_at"]).timestamp() + 0.01
    again = await asyncio.gather(
        *(at(datetime.fromtimestamp(end), lambda: claim(http, server, coupon_id, "alice"))
          for _ in range(20))
    )  # fmt: skip
    assert Counter(status for status, _ in again) == {201: 1, 409: 19}
    books = await audit.audit(pool, coupon_id)
    assert (books.live, books.expired, books.users_over_limit, books.problems) == (1, 1, 0, [])


SWEEPER = """
import asyncio, sys, asyncpg
from couponapi.services.holds import sweep_once

async def main():
    # No statement cache: the URL may be a transaction-mode pooler (the PgBouncer run).
    async with asyncpg.create_pool(
            sys.argv[1], min_size=1, max_size=2, statement_cache_size=0) as pool:
        while await sweep_once(pool, batch=200) or await pool.fetchval(
                "SELECT count(*) FROM claim WHERE status = 'claimed'"):
            pass

asyncio.run(main())
"""


async def test_sweepers_in_several_processes_expire_each_hold_once(
    database_url: str, pool: asyncpg.Pool
) -> None:
    coupons = 3
    for number in range(coupons):  # 3 coupons of 3,000 due holds each, made in SQL
        await pool.execute(
            """WITH c AS (INSERT INTO coupon (id, type, quantity, hold_seconds)
                          VALUES (gen_random_uuid(), 'bulk', 0, 60) RETURNING id),
                    made AS (
                 INSERT INTO claim (id, coupon_id, user_id, code, claimed_at, expires_at)
                 SELECT gen_random_uuid(), c.id, 'u' || n, $1 || '-' || n,
                        now() - interval '2 minutes', now() - interval '1 minute'
                   FROM c, generate_series(1, 3000) AS n RETURNING id, coupon_id, user_id)
               INSERT INTO claim_event (claim_id, coupon_id, user_id, kind)
               SELECT id, coupon_id, user_id, 'granted' FROM made""",
            f"bulk{number}",
        )
        await pool.execute("UPDATE coupon SET total_quantity = 3000 WHERE type = 'bulk'")
    sweepers = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", SWEEPER, database_url)
        for _ in range(4)
    ]
    assert [await asyncio.wait_for(s.wait(), 120) for s in sweepers] == [0] * 4
    rows = await pool.fetch(
        "SELECT c.status, count(e.id) AS expiries FROM claim c"
        " LEFT JOIN claim_event e ON e.claim_id = c.id AND e.kind = 'expired'"
        " GROUP BY c.id, c.status"
    )
    assert Counter((row["status"], row["expiries"]) for row in rows) == {("expired", 1): 9_000}
    for coupon_id in await pool.fetchval("SELECT array_agg(id) FROM coupon"):
        books = await audit.audit(pool, coupon_id)
        assert (books.remaining, books.expired, books.problems) == (3000, 3000, [])
