"""Holds over HTTP: hold_seconds on create and PATCH (bad values 422, a shorter hold 422 while
a claim would outlast it), expires_at in claims and listings, `remaining` and statuses as of
now, 409 `expired` for redeem and release, and the audit route with who may read it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest

from couponapi.services.holds import sweep_once
from tests.identity.world import make_key
from tests.v2_support import ADMIN, TOKEN, V2, as_user, claim_state, create_coupon, v2_client

DAYS_30 = 30 * 24 * 3600


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with v2_client(database_url, auth=TOKEN) as client:
        yield client


async def claim(api: httpx.AsyncClient, coupon_id: UUID, user: str) -> httpx.Response:
    return await api.post(f"{V2}/coupons/{coupon_id}/claims", json={"user_id": user})


def refused(response: httpx.Response, status: int, slug: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == f"/problems/{slug}"


@pytest.mark.parametrize("hold", [0, -1, DAYS_30 + 1, 1.5, "60", True, [60]])
async def test_a_bad_hold_is_refused_and_nothing_is_created(
    api: httpx.AsyncClient, pool: asyncpg.Pool, hold: Any
) -> None:
    body = {"name": "n", "type": "t", "quantity": 1, "hold_seconds": hold}
    refused(await api.post(f"{V2}/coupons", json=body), 422, "invalid-request")
    assert await pool.fetchval("SELECT count(*) FROM coupon") == 0


@pytest.mark.parametrize("hold", [1, 600, DAYS_30, None])
async def test_a_hold_from_one_second_to_30_days_or_none(
    api: httpx.AsyncClient, hold: int | None
) -> None:
    coupon_id = await create_coupon(api, 1, hold_seconds=hold)
    got = await api.get(f"{V2}/coupons/{coupon_id}")
    assert got.json()["hold_seconds"] == hold


async def test_a_patch_with_a_bad_hold_changes_nothing(api: httpx.AsyncClient) -> None:
    coupon_id = await create_coupon(api, 1, hold_seconds=60)
    for hold in (0, DAYS_30 + 1, 2.5, "x"):
        patch = await api.patch(f"{V2}/coupons/{coupon_id}", json={"hold_seconds": hold})
        refused(patch, 422, "invalid-request")
    assert (await api.get(f"{V2}/coupons/{coupon_id}")).json()["hold_seconds"] == 60


async def test_a_shorter_hold_is_refused_while_a_claim_would_outlast_it(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    coupon_id = await create_coupon(api, 3, hold_seconds=600)
    granted = (await claim(api, coupon_id, "alice")).json()
    url = f"{V2}/coupons/{coupon_id}"
    patch = await api.patch(url, json={"hold_seconds": 60, "quantity": 5})
    refused(patch, 422, "hold-would-shorten")
    coupon = (await api.get(url)).json()
    assert (coupon["hold_seconds"], coupon["quantity"]) == (600, 3)  # nothing changed
    longer = await api.patch(url, json={"hold_seconds": 1200})
    assert (longer.status_code, longer.json()["hold_seconds"]) == (200, 1200)
    # The hold alice was given stays as she was told.
    stored = await pool.fetchval("SELECT expires_at FROM claim WHERE id = $1", UUID(granted["id"]))
    assert stored.isoformat().replace("+00:00", "Z") == granted["expires_at"]
    # Once she released it, nothing would outlast a shorter hold.
    assert (await api.post(f"{V2}/claims/{granted['id']}/release")).status_code == 200
    shorter = await api.patch(url, json={"hold_seconds": 60})
    assert (shorter.status_code, shorter.json()["hold_seconds"]) == (200, 60)
    never = await api.patch(url, json={"hold_seconds": None})
    assert (never.status_code, never.json()["hold_seconds"]) == (200, None)


async def test_a_claim_expires_at_its_hold_and_reads_expired(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    coupon_id = await create_coupon(api, 1, hold_seconds=1)
    granted = (await claim(api, coupon_id, "alice")).json()
    claimed_at = datetime.fromisoformat(granted["claimed_at"])
    assert datetime.fromisoformat(granted["expires_at"]) - claimed_at == timedelta(seconds=1)
    coupon = (await api.get(f"{V2}/coupons/{coupon_id}")).json()
    assert (coupon["remaining"], coupon["claimed"]) == (0, 1)
    refused(await claim(api, coupon_id, "bob"), 409, "sold-out")
    await asyncio.sleep(1.1)
    # As of now, whether or not the sweeper ran: the unit is back, the claim is expired.
    coupon = (await api.get(f"{V2}/coupons/{coupon_id}")).json()
    assert (coupon["remaining"], coupon["claimed"]) == (1, 0)
    listed = (await api.get(f"{V2}/coupons/{coupon_id}/claims")).json()["items"]
    assert [(c["user_id"], c["status"], c["expires_at"]) for c in listed] == [
        ("alice", "expired", granted["expires_at"])
    ]
    mine = (await api.get(f"{V2}/me/claims", headers=as_user("alice"))).json()["items"]
    assert [c["status"] for c in mine] == ["expired"]
    refused(await api.post(f"{V2}/claims/redeem", json={"code": granted["code"]}), 409, "expired")
    refused(await api.post(f"{V2}/claims/{granted['id']}/release"), 409, "expired")
    # Bob takes the unit; alice's limit no longer counts the expired claim.
    assert (await claim(api, coupon_id, "bob")).status_code == 201
    await api.patch(f"{V2}/coupons/{coupon_id}", json={"quantity": 2})
    assert (await claim(api, coupon_id, "alice")).status_code == 201
    await sweep_once(pool)
    state = await claim_state(pool, coupon_id)
    state.check()
    assert (state.remaining, state.live_claims, state.expired) == (0, 2, 1)


async def test_the_audit_balances_and_says_who_may_read_it(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    coupon_id = await create_coupon(api, 5, hold_seconds=1)
    codes = [(await claim(api, coupon_id, f"u{n}")).json() for n in range(4)]
    await api.post(f"{V2}/claims/redeem", json={"code": codes[0]["code"]})
    await api.post(f"{V2}/claims/{codes[1]['id']}/release")
    await asyncio.sleep(1.1)
    url = f"{V2}/coupons/{coupon_id}/audit"
    answer = await api.get(url, headers=ADMIN)
    assert answer.status_code == 200
    books = answer.json()
    assert books.pop("checked_at").endswith("Z")
    # The app's own sweeper may have marked the two expiries already: either way, each is
    # pending or in the ledger, never both.
    assert books.pop("expired_pending") + books["ledger"].pop("expired") == 2
    assert books == {
        "coupon_id": str(coupon_id), "quantity": 5, "remaining": 4, "live": 1, "held": 0,
        "redeemed": 1, "released": 1, "expired": 2, "claims": 4,
        "given_v1": 0, "users_over_limit": 0,
        "ledger": {"granted": 4, "released": 1, "redeemed": 1},
        "conserved": True, "problems": [],
    }  # fmt: skip
    await sweep_once(pool)
    swept = (await api.get(url, headers=ADMIN)).json()
    assert (swept["expired_pending"], swept["ledger"]["expired"], swept["conserved"]) == (
        0, 2, True,
    )  # fmt: skip
    server = await make_key(api, "checkout", "server")
    assert (await api.get(url, headers={"Authorization": f"Bearer {server}"})).status_code == 200
    refused(await api.get(url, headers=as_user("u0")), 403, "not-permitted")
    async with httpx.AsyncClient(transport=api._transport, base_url="http://test") as bare:
        refused(await bare.get(url), 401, "unauthorized")
    refused(await api.get(f"{V2}/coupons/{uuid4()}/audit"), 404, "coupon-not-found")
    refused(await api.get(f"{V2}/coupons/nope/audit"), 422, "invalid-request")


async def test_the_audit_catches_books_that_do_not_balance(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    coupon_id = await create_coupon(api, 3)
    await claim(api, coupon_id, "alice")
    await pool.execute("UPDATE coupon SET quantity = 2 + 1 WHERE id = $1", coupon_id)
    books = (await api.get(f"{V2}/coupons/{coupon_id}/audit")).json()
    assert books["conserved"] is False
    assert books["problems"] == ["quantity 3 != remaining 3 + live claims 1 + v1 grants 0 (= 4)"]


async def test_the_dashboard_shows_held_and_expired_per_coupon(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    short = await create_coupon(api, 5, hold_seconds=1)
    long = await create_coupon(api, 5, hold_seconds=600)
    forever = await create_coupon(api, 5)
    for coupon_id in (short, long, forever):
        for user in ("a", "b", "c"):
            assert (await claim(api, coupon_id, user)).status_code == 201
    await asyncio.sleep(1.1)
    stats = (await api.get("/dashboard/stats")).json()
    shown = {UUID(c["id"]): c for c in stats["coupons"]}
    seen = [(shown[c]["remaining"], shown[c]["held"], shown[c]["expired"]) for c in (short, long)]
    assert seen == [(5, 0, 3), (2, 3, 0)]
    assert (shown[forever]["remaining"], shown[forever]["hold_seconds"]) == (2, None)
    assert (shown[forever]["held"], shown[forever]["expired"]) == (0, 0)  # holds only
    await sweep_once(pool)
    again = {UUID(c["id"]): c for c in (await api.get("/dashboard/stats")).json()["coupons"]}
    assert (again[short]["remaining"], again[short]["expired"]) == (5, 3)
