"""v2 rules under real concurrency: a 2-process server, parallel connections (aiohttp), and
the database checked afterwards. Each v2 claim strategy is run where it is cheap to."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any
from uuid import UUID

import aiohttp
import asyncpg
import pytest

from couponapi.strategies import CLAIM_STRATEGIES
from tests.support import RunningServer
from tests.v2_support import ADMIN, V2, claim_state

pytestmark = pytest.mark.concurrency

Answer = tuple[int, dict[str, Any], bool]  # status, body, replayed


async def post(
    http: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> Answer:
    async with http.post(url, json=body, headers={**ADMIN, **(headers or {})}) as response:
        replayed = response.headers.get("Idempotent-Replayed") == "true"
        return response.status, await response.json(content_type=None), replayed


async def new_coupon(
    http: aiohttp.ClientSession, server: RunningServer, quantity: int, limit: int = 1
) -> UUID:
    body = {"name": "crowd", "type": "percent", "quantity": quantity, "per_user_limit": limit}
    status, coupon, _ = await post(http, f"{server.base_url}{V2}/coupons", body, ADMIN)
    assert status == 201
    return UUID(coupon["id"])


def claims_url(server: RunningServer, coupon_id: UUID, strategy: str | None = None) -> str:
    query = f"?strategy={strategy}" if strategy else ""
    return f"{server.base_url}{V2}/coupons/{coupon_id}/claims{query}"


async def test_one_user_firing_50_parallel_claims_gets_one(
    server: RunningServer, http: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    for strategy in sorted(CLAIM_STRATEGIES):  # one server start for every strategy
        coupon_id = await new_coupon(http, server, quantity=10, limit=1)
        url = claims_url(server, coupon_id, strategy)
        answers = await asyncio.gather(*(post(http, url, {"user_id": "solo"}) for _ in range(50)))
        assert Counter(status for status, _, _ in answers) == {201: 1, 409: 49}, strategy
        assert {body["type"] for status, body, _ in answers if status == 409} == {
            "/problems/limit-reached"
        }
        state = await claim_state(pool, coupon_id)
        state.check()
        assert (state.remaining, state.live_claims) == (9, 1), strategy


async def test_1000_users_twice_each_on_500_get_exactly_500(
    server: RunningServer, http: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    coupon_id = await new_coupon(http, server, quantity=500, limit=1)
    url = claims_url(server, coupon_id)
    users = [f"user-{n}" for n in range(1_000)] * 2
    random.Random(7).shuffle(users)
    answers = await asyncio.gather(*(post(http, url, {"user_id": user}) for user in users))
    statuses = Counter(status for status, _, _ in answers)
    assert statuses == {201: 500, 409: 1_500}
    winners = [body["user_id"] for status, body, _ in answers if status == 201]
    assert len(set(winners)) == 500
    state = await claim_state(pool, coupon_id)
    state.check()
    assert (state.remaining, state.live_claims, state.distinct_live_users) == (0, 500, 500)
    in_db = {r["user_id"] for r in await pool.fetch("SELECT user_id FROM claim")}
    assert in_db == set(winners)


async def test_one_key_fired_20_times_takes_one_coupon(
    server: RunningServer, http: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    for strategy in sorted(CLAIM_STRATEGIES):  # one server start for every strategy
        coupon_id = await new_coupon(http, server, quantity=5, limit=5)
        url = claims_url(server, coupon_id, strategy)
        key = {"Idempotency-Key": f"retry-{strategy}"}
        answers = await asyncio.gather(*(post(http, url, {"user_id": "u"}, key) for _ in range(20)))
        assert {status for status, _, _ in answers} == {201}, strategy
        assert all(body == answers[0][1] for _, body, _ in answers), strategy
        assert sum(replayed for _, _, replayed in answers) == 19, strategy
        state = await claim_state(pool, coupon_id)
        state.check()
        assert (state.remaining, state.live_claims) == (4, 1), strategy


async def test_redeem_and_release_each_succeed_once_in_parallel(
    server: RunningServer, http: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    coupon_id = await new_coupon(http, server, quantity=2, limit=2)
    url = claims_url(server, coupon_id)
    first = (await post(http, url, {"user_id": "u"}))[1]
    second = (await post(http, url, {"user_id": "u"}))[1]
    redeem_url = f"{server.base_url}{V2}/claims/redeem"
    redeems = await asyncio.gather(
        *(post(http, redeem_url, {"code": first["code"]}) for _ in range(10))
    )
    assert Counter(status for status, _, _ in redeems) == {200: 1, 409: 9}
    release_url = f"{server.base_url}{V2}/claims/{second['id']}/release"
    releases = await asyncio.gather(*(post(http, release_url, {}) for _ in range(10)))
    assert Counter(status for status, _, _ in releases) == {200: 1, 409: 9}
    state = await claim_state(pool, coupon_id)
    state.check()
    assert (state.remaining, state.live_claims, state.redeemed, state.released) == (1, 1, 1, 1)
    assert state.ledger == {"granted": 2, "redeemed": 1, "released": 1}


async def test_releases_racing_new_claims_never_exceed_the_quantity(
    server: RunningServer, http: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    coupon_id = await new_coupon(http, server, quantity=50, limit=1)
    url = claims_url(server, coupon_id)
    held = await asyncio.gather(*(post(http, url, {"user_id": f"old-{n}"}) for n in range(50)))
    assert {status for status, _, _ in held} == {201}
    releases = [
        post(http, f"{server.base_url}{V2}/claims/{body['id']}/release", {}) for _, body, _ in held
    ]
    newcomers = [post(http, url, {"user_id": f"new-{n}"}) for n in range(150)]
    racing = [*releases, *newcomers]
    random.Random(3).shuffle(racing)
    answers = await asyncio.gather(*racing)
    released = sum(1 for status, _, _ in answers if status == 200)  # releases only: 200
    granted = sum(1 for status, _, _ in answers if status == 201)
    assert released == 50
    assert granted <= 50
    state = await claim_state(pool, coupon_id)
    state.check()
    assert state.live_claims == granted <= state.total == 50
    assert state.remaining == 50 - granted
    # What is left goes to the next ones, exactly.
    late = await asyncio.gather(*(post(http, url, {"user_id": f"late-{n}"}) for n in range(60)))
    assert sum(1 for status, _, _ in late if status == 201) == 50 - granted
    final = await claim_state(pool, coupon_id)
    final.check()
    assert (final.remaining, final.live_claims, final.released) == (0, 50, 50)
