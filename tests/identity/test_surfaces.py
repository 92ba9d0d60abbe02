"""Identity around v2: the dashboard's data (admin, unless opened read-only), v1's setting
(open, behind the admin credential, or off), and the rate limiter keyed on the subject."""

from __future__ import annotations

import asyncpg
import pytest

from tests.identity.world import books, world
from tests.v2_support import ADMIN, V2, as_user, create_coupon, v2_client

V1 = "/coupon/api/v1"


@pytest.mark.parametrize("path", ["/dashboard/stats", "/dashboard/race"])
async def test_the_dashboards_data_is_the_admins(database_url: str, path: str) -> None:
    async with v2_client(database_url) as client:
        anonymous = await client.get(path)
        user = await client.get(path, headers=as_user("alice"))
        admin = await client.get(path, headers=ADMIN)
        page = await client.get("/dashboard")
    assert (anonymous.status_code, user.status_code, admin.status_code) == (401, 403, 200)
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert page.status_code == 200  # the page itself asks for the token


async def test_a_setting_opens_the_dashboard_read_only(database_url: str) -> None:
    async with v2_client(database_url, dashboard_public=True) as client:
        stats = await client.get("/dashboard/stats")
        status = await client.get("/dashboard/race")
        race = await client.post("/dashboard/race", json={})
    assert (stats.status_code, status.status_code) == (200, 200)
    assert race.status_code == 401  # the race button stays the admin's


async def test_v1_is_open_by_default(database_url: str, pool: asyncpg.Pool) -> None:
    async with v2_client(database_url) as client:
        created = await client.post(f"{V1}/create", json={"Type": "x", "Amount": 2})
        given = await client.post(f"{V1}/give-transaction/{created.json()['id']}")
    assert (created.status_code, given.status_code) == (200, 200)


async def test_v1_behind_the_admin_credential(database_url: str, pool: asyncpg.Pool) -> None:
    async with v2_client(database_url, v1_access="admin") as client:
        coupon_id = await create_coupon(client)
        before = await books(pool)
        anonymous = await client.post(f"{V1}/give-transaction/{coupon_id}")
        user = await client.post(f"{V1}/give-transaction/{coupon_id}", headers=as_user("a"))
        read = await client.get(f"{V1}/{coupon_id}")
        assert await books(pool) == before
        admin = await client.post(f"{V1}/give-transaction/{coupon_id}", headers=ADMIN)
    assert (anonymous.status_code, user.status_code, read.status_code) == (401, 403, 401)
    assert anonymous.json() == {
        "code": 401,
        "errorDescription": "an admin bearer token is required",
    }
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert admin.status_code == 200


async def test_v1_switched_off(database_url: str, pool: asyncpg.Pool) -> None:
    async with v2_client(database_url, v1_access="off") as client:
        coupon_id = await create_coupon(client)
        before = await books(pool)
        give = await client.post(f"{V1}/give-transaction/{coupon_id}", headers=ADMIN)
        create = await client.post(f"{V1}/create", json={"Type": "x", "Amount": 2}, headers=ADMIN)
        paths = (await client.get("/openapi.json")).json()["paths"]
        assert await books(pool) == before
    assert (give.status_code, create.status_code) == (404, 404)
    assert not [path for path in paths if path.startswith(V1)]


async def test_the_rate_limit_keys_on_the_authenticated_subject(
    database_url: str, pool: asyncpg.Pool
) -> None:
    # 1 token a minute, bursts of 2: nothing refills while the test runs.
    async with world(database_url, rate_limit=1 / 60, rate_limit_burst=2) as w:
        url = f"{V2}/coupons/{w.coupon_id}/claims"
        alice = [(await w.client.post(url, headers=as_user("alice"))).status_code for _ in range(3)]
        bob = [(await w.client.post(url, headers=as_user("bob"))).status_code for _ in range(2)]
        # Every caller here shares one address: keyed on it, bob would have been refused.
        forged = await w.client.post(url, headers={"Authorization": "Bearer a.b.c"})
    assert alice == [201, 201, 429]
    assert bob == [201, 201]
    assert forged.status_code == 403  # a refused credential is keyed on the address
    assert await pool.fetchval("SELECT count(*) FROM claim WHERE user_id = 'alice'") == 3
