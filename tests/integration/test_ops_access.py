"""Access and abuse: the rate limit on claims, X-Forwarded-For from trusted proxies only, and
an admin token that never reaches a log line."""

from __future__ import annotations

import json
import logging
from uuid import uuid4

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from couponapi.config import Settings
from couponapi.logs import JsonFormatter
from tests.support import app_client

V1 = "/coupon/api/v1"
V2 = "/api/v2"


async def new_coupon(pool: asyncpg.Pool, quantity: int = 100) -> str:
    coupon_id = uuid4()
    await pool.execute(
        "INSERT INTO coupon (id, type, quantity) VALUES ($1, 'percent', $2)", coupon_id, quantity
    )
    return str(coupon_id)


def limited(settings: Settings, **changes: object) -> Settings:
    # 1 token a minute: nothing refills while the test runs, so the counts are exact.
    return settings.model_copy(update={"rate_limit": 1 / 60, "rate_limit_burst": 3, **changes})


async def test_rate_limit_is_off_by_default(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    coupon_id = await new_coupon(pool)
    statuses = {
        (await client.post(f"{V1}/give-transaction/{coupon_id}")).status_code for _ in range(10)
    }
    assert statuses == {200}


async def test_rate_limit_by_client_address(settings: Settings, pool: asyncpg.Pool) -> None:
    coupon_id = await new_coupon(pool)
    give = f"{V1}/give-transaction-pgfunction/{coupon_id}"
    claim = f"{V2}/coupons/{coupon_id}/claims"
    async with app_client(limited(settings)) as http:
        first = [(await http.post(give)).status_code for _ in range(3)]
        refused = await http.post(claim, json={"user_id": "someone"})  # same bucket: any claim
        other_routes = [(await http.get(f"{V1}/{coupon_id}")).status_code for _ in range(5)]
        metrics = (await http.get("/metrics")).text
    assert first == [200, 200, 200]
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "60"
    assert refused.json()["code"] == 429
    assert other_routes == [200] * 5  # only claims are limited
    assert "couponapi_rate_limited_total" in metrics
    async with app_client(limited(settings), client="127.0.0.2") as elsewhere:
        assert (await elsewhere.post(give)).status_code == 200  # another client, its own bucket
    assert await pool.fetchval("SELECT count(*) FROM coupon_given_events") == 4


async def test_rate_limit_by_user(settings: Settings, pool: asyncpg.Pool) -> None:
    coupon_id = await new_coupon(pool)
    give = f"{V1}/give-transaction/{coupon_id}"
    async with app_client(limited(settings, rate_limit_key="user")) as http:
        alice = [
            (await http.post(give, headers={"X-User-Id": "alice"})).status_code for _ in range(4)
        ]
        bob = (await http.post(give, headers={"X-User-Id": "bob"})).status_code
    assert alice == [200, 200, 200, 429]
    assert bob == 200


async def test_forwarded_for_counts_only_from_trusted_proxies(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    coupon_id = await new_coupon(pool)
    give = f"{V1}/give-transaction/{coupon_id}"
    trusting = limited(settings, rate_limit_burst=1, trusted_proxies="10.0.0.1")

    async def statuses(http: httpx.AsyncClient, forwarded: list[str]) -> list[int]:
        return [
            (await http.post(give, headers={"X-Forwarded-For": f})).status_code for f in forwarded
        ]

    # Through the trusted proxy: each forwarded address is its own client.
    async with app_client(trusting, client="10.0.0.1") as proxy:
        assert await statuses(proxy, ["203.0.113.1", "203.0.113.2", "203.0.113.1"]) == [
            200,
            200,
            429,
        ]
    # From anyone else the header is ignored: changing it does not buy a new bucket.
    async with app_client(trusting, client="198.51.100.9") as direct:
        assert await statuses(direct, ["203.0.113.3", "203.0.113.4"]) == [200, 429]


async def test_the_admin_token_never_reaches_the_logs(
    settings: Settings, pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    token = "s3cret-admin-token-that-must-not-leak"
    wrong = "wrong-token-that-must-not-leak-either"
    chatty = Settings(
        database_url=settings.database_url,
        admin_token=SecretStr(token),
        access_log=True,
        log_level="debug",
    )
    assert token not in repr(chatty)
    assert token not in str(chatty.model_dump())
    coupon_id = await new_coupon(pool)
    caplog.set_level(logging.DEBUG)
    async with app_client(chatty) as http:
        for auth in (token, wrong):
            headers = {"Authorization": f"Bearer {auth}", "X-Request-ID": "admin-call"}
            await http.post(f"{V2}/coupons", json={"name": "n", "kind": "k"}, headers=headers)
            await http.post(f"{V2}/coupons", content=b"{", headers=headers)
            await http.get(f"{V2}/coupons/{coupon_id}/claims", headers=headers)
            await http.get(f"{V2}/coupons/{coupon_id}/claims?limit=0", headers=headers)
    lines = [JsonFormatter().format(record) for record in caplog.records]
    assert any(json.loads(line).get("request_id") == "admin-call" for line in lines)
    for line in [*lines, caplog.text]:
        assert token not in line
        assert wrong not in line
