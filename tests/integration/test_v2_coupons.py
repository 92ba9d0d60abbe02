"""v2 coupon routes: create, read, list (cursor pages), change; admin token; problem details."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import asyncpg
import httpx
import pytest

from tests.v2_support import ADMIN, V2, claim_state, create_coupon, v2_client


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with v2_client(database_url) as client:
        yield client


def problem(response: httpx.Response, status: int, slug: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert body["type"] == f"/problems/{slug}"
    assert body["title"]
    assert body["detail"]
    return body


async def test_create_then_get_with_counts(api: httpx.AsyncClient) -> None:
    coupon_id = uuid4()
    starts = datetime(2026, 1, 1, tzinfo=UTC)
    body = {
        "id": str(coupon_id), "name": "launch", "type": "percent", "quantity": 3,
        "per_user_limit": 2, "starts_at": "2026-01-01T01:00:00+01:00",
    }  # fmt: skip
    created = await api.post(f"{V2}/coupons", json=body, headers=ADMIN)
    assert created.status_code == 201
    assert created.headers["location"] == f"{V2}/coupons/{coupon_id}"
    coupon = created.json()
    created_at = coupon.pop("created_at")
    assert created_at.endswith("Z")
    assert coupon == {
        "id": str(coupon_id), "name": "launch", "type": "percent", "quantity": 3,
        "remaining": 3, "claimed": 0, "redeemed": 0, "per_user_limit": 2,
        "starts_at": starts.isoformat().replace("+00:00", "Z"), "ends_at": None,
        "paused": False, "hold_seconds": None,
    }  # fmt: skip
    fetched = await api.get(f"{V2}/coupons/{coupon_id}")
    assert fetched.status_code == 200
    assert fetched.json() == {**coupon, "created_at": created_at}


async def test_admin_routes_need_the_token(api: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    body = {"name": "n", "type": "t", "quantity": 1}
    missing = await api.post(f"{V2}/coupons", json=body)
    problem(missing, 401, "unauthorized")
    assert missing.headers["www-authenticate"].startswith("Bearer")
    basic = await api.post(f"{V2}/coupons", json=body, headers={"Authorization": "Basic eDp5"})
    problem(basic, 401, "unauthorized")
    wrong = await api.post(f"{V2}/coupons", json=body, headers={"Authorization": "Bearer nope"})
    problem(wrong, 403, "forbidden")
    coupon_id = await create_coupon(api)
    patch = await api.patch(f"{V2}/coupons/{coupon_id}", json={"paused": True})
    problem(patch, 401, "unauthorized")
    listing = await api.get(f"{V2}/coupons/{coupon_id}/claims")
    problem(listing, 401, "unauthorized")
    assert await pool.fetchval("SELECT count(*) FROM coupon") == 1
    assert await pool.fetchval("SELECT paused FROM coupon") is False


async def test_a_server_without_a_token_opens_nothing(database_url: str) -> None:
    async with v2_client(database_url, admin_token=None) as client:
        body = {"name": "n", "type": "t", "quantity": 1}
        response = await client.post(f"{V2}/coupons", json=body, headers=ADMIN)
    problem(response, 403, "forbidden")


async def test_v1_create_can_be_put_behind_the_token(database_url: str) -> None:
    async with v2_client(database_url, protect_v1_create=True) as client:
        body = {"Type": "x", "Amount": 1}
        refused = await client.post("/coupon/api/v1/create", json=body)
        assert refused.status_code == 401
        assert refused.json() == {
            "code": 401,
            "errorDescription": "an admin bearer token is required",
        }
        allowed = await client.post("/coupon/api/v1/create", json=body, headers=ADMIN)
        assert allowed.status_code == 200
        assert (await client.get(f"{V2}/coupons/{allowed.json()['id']}")).json()["quantity"] == 1


@pytest.mark.parametrize(
    "body",
    [
        b'{"name": "n", "type": "t", "quantity": -1}',
        b'{"name": "n", "type": "t", "quantity": "3"}',
        b'{"name": "n", "type": "t", "quantity": 3, "per_user_limit": 0}',
        b'{"name": "n", "type": "t"}',
        b'{"name": "", "type": "t", "quantity": 3}',
        b'{"name": "n", "type": "t", "quantity": 3, "id": "nope"}',
        b'{"name": "n", "type": "t", "quantity": 3, "starts_at": "2026-01-01T00:00:00"}',
        b'{"name": "n", "type": "t", "quantity": 3, "surprise": 1}',
        b'{"name": "n", "type": "t", "quantity": 3, "starts_at": "2026-02-01T00:00:00Z",'
        b' "ends_at": "2026-01-01T00:00:00Z"}',
        b'{"name": "n", "type": "t", "quantity": ',
        b"[1]",
        b"",
    ],
)
async def test_bad_create_bodies_are_422_and_store_nothing(
    api: httpx.AsyncClient, pool: asyncpg.Pool, body: bytes
) -> None:
    problem(await api.post(f"{V2}/coupons", content=body, headers=ADMIN), 422, "invalid-request")
    assert await pool.fetchval("SELECT count(*) FROM coupon") == 0


async def test_duplicate_id_too_large_unknown_and_malformed(api: httpx.AsyncClient) -> None:
    coupon_id = await create_coupon(api)
    again = {"id": str(coupon_id), "name": "n", "type": "t", "quantity": 1}
    problem(await api.post(f"{V2}/coupons", json=again, headers=ADMIN), 409, "duplicate-coupon")
    huge = {"name": "n" * 20_000, "type": "t", "quantity": 1}
    problem(await api.post(f"{V2}/coupons", json=huge, headers=ADMIN), 413, "body-too-large")
    problem(await api.get(f"{V2}/coupons/{uuid4()}"), 404, "coupon-not-found")
    problem(await api.get(f"{V2}/coupons/12345"), 422, "invalid-request")
    unknown_route = await api.get(f"{V2}/nothing")
    assert unknown_route.status_code == 404
    assert unknown_route.json()["type"] == "about:blank"


async def test_list_pages_with_a_cursor(api: httpx.AsyncClient) -> None:
    assert (await api.get(f"{V2}/coupons")).json() == {"items": [], "next_cursor": None}
    ids = [str(await create_coupon(api)) for _ in range(5)]
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(5):
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await api.get(f"{V2}/coupons", params=params)).json()
        seen += [coupon["id"] for coupon in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids  # oldest first, each once
    for bad in ({"limit": "0"}, {"limit": "201"}, {"limit": "x"}, {"cursor": "garbage!"}):
        problem(await api.get(f"{V2}/coupons", params=bad), 422, "invalid-request")


async def test_patch_quantity_window_pause(api: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    coupon_id = await create_coupon(api, quantity=3, per_user_limit=3)
    for _ in range(2):
        claimed = await api.post(
            f"{V2}/coupons/{coupon_id}/claims", json={"user_id": "u"}, headers=ADMIN
        )
        assert claimed.status_code == 201
    url = f"{V2}/coupons/{coupon_id}"
    below = await api.patch(url, json={"quantity": 1}, headers=ADMIN)
    problem(below, 409, "quantity-below-claimed")
    lowered = await api.patch(url, json={"quantity": 2}, headers=ADMIN)
    assert lowered.status_code == 200
    assert {k: lowered.json()[k] for k in ("quantity", "remaining", "claimed")} == {
        "quantity": 2, "remaining": 0, "claimed": 2,
    }  # fmt: skip
    raised = (await api.patch(url, json={"quantity": 10, "paused": True}, headers=ADMIN)).json()
    assert (raised["quantity"], raised["remaining"], raised["paused"]) == (10, 8, True)
    ends = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    window = await api.patch(
        url, json={"ends_at": ends.isoformat(), "paused": False}, headers=ADMIN
    )
    assert window.json()["ends_at"] == ends.isoformat().replace("+00:00", "Z")
    assert window.json()["paused"] is False
    cleared = await api.patch(url, json={"ends_at": None}, headers=ADMIN)
    assert cleared.json()["ends_at"] is None
    backwards = {"starts_at": "2030-01-01T00:00:00Z", "ends_at": "2029-01-01T00:00:00Z"}
    problem(await api.patch(url, json=backwards, headers=ADMIN), 422, "invalid-request")
    problem(await api.patch(url, json={"paused": "yes"}, headers=ADMIN), 422, "invalid-request")
    missing = await api.patch(f"{V2}/coupons/{uuid4()}", json={"paused": True}, headers=ADMIN)
    problem(missing, 404, "coupon-not-found")
    state = await claim_state(pool, coupon_id)
    state.check()
    assert (state.total, state.remaining, state.live_claims) == (10, 8, 2)
