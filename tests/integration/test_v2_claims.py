"""v2 claims over HTTP: grant, every refusal, idempotent retries, release, redemption,
listings; the database checked after each (claimed == total - remaining == live claims)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest

from tests.v2_support import ADMIN, TOKEN, V2, claim_state, create_coupon, v2_client

CODE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$")


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with v2_client(database_url, auth=TOKEN) as client:
        yield client


async def claim(
    api: httpx.AsyncClient, coupon_id: UUID | str, user: str, key: str | None = None
) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return await api.post(
        f"{V2}/coupons/{coupon_id}/claims", json={"user_id": user}, headers=headers
    )


def refused(response: httpx.Response, status: int, slug: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == f"/problems/{slug}"
    assert response.json()["status"] == status


async def test_a_claim_has_a_code_and_counts(api: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    coupon_id = await create_coupon(api, quantity=2)
    response = await claim(api, coupon_id, "alice")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {
        "id", "coupon_id", "user_id", "code", "status", "claimed_at", "released_at", "redeemed_at",
        "expires_at",
    }  # fmt: skip
    assert (body["coupon_id"], body["user_id"], body["status"]) == (
        str(coupon_id),
        "alice",
        "claimed",
    )
    assert CODE.match(body["code"])
    assert body["claimed_at"].endswith("Z")
    assert "idempotent-replayed" not in response.headers
    coupon = (await api.get(f"{V2}/coupons/{coupon_id}")).json()
    assert (coupon["quantity"], coupon["remaining"], coupon["claimed"]) == (2, 1, 1)
    state = await claim_state(pool, coupon_id)
    state.check()
    assert state.ledger == {"granted": 1}


async def test_limit_sold_out_and_unknown(api: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    coupon_id = await create_coupon(api, quantity=3, per_user_limit=2)
    assert [(await claim(api, coupon_id, "a")).status_code for _ in range(2)] == [201, 201]
    refused(await claim(api, coupon_id, "a"), 409, "limit-reached")
    assert (await claim(api, coupon_id, "b")).status_code == 201
    refused(await claim(api, coupon_id, "c"), 409, "sold-out")
    refused(await claim(api, uuid4(), "a"), 404, "coupon-not-found")
    state = await claim_state(pool, coupon_id)
    state.check()
    assert (state.remaining, state.live_claims, state.distinct_live_users) == (0, 3, 2)


async def test_window_and_pause_are_refused(api: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    now = datetime.now(UTC)
    soon = await create_coupon(api, starts_at=(now + timedelta(hours=1)).isoformat())
    over = await create_coupon(
        api,
        starts_at=(now - timedelta(hours=2)).isoformat(),
        ends_at=(now - timedelta(hours=1)).isoformat(),
    )
    paused = await create_coupon(api)
    await api.patch(f"{V2}/coupons/{paused}", json={"paused": True}, headers=ADMIN)
    for coupon_id in (soon, over, paused):
        refused(await claim(api, coupon_id, "a"), 409, "not-active")
    await api.patch(f"{V2}/coupons/{paused}", json={"paused": False}, headers=ADMIN)
    assert (await claim(api, paused, "a")).status_code == 201
    assert await pool.fetchval("SELECT count(*) FROM claim") == 1


async def test_malformed_claims_are_422(api: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    coupon_id = await create_coupon(api)
    url = f"{V2}/coupons/{coupon_id}/claims"
    for body in (b"", b"{", b"[]", b'{"user_id": ""}', b'{"user_id": 7}', b'{"user": "a"}',
                 b'{"user_id": "' + b"u" * 129 + b'"}'):  # fmt: skip
        refused(await api.post(url, content=body), 422, "invalid-request")
    refused(await claim(api, "not-a-uuid", "a"), 422, "invalid-request")
    bad_key = await api.post(url, json={"user_id": "a"}, headers={"Idempotency-Key": "k" * 256})
    refused(bad_key, 422, "invalid-request")
    strategy = await api.post(f"{url}?strategy=naive", json={"user_id": "a"})
    refused(strategy, 422, "invalid-request")
    assert await pool.fetchval("SELECT count(*) FROM claim") == 0


async def test_the_same_key_replays_the_first_answer(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    coupon_id = await create_coupon(api, quantity=1)
    first = await claim(api, coupon_id, "a", key="k-1")
    again = await claim(api, coupon_id, "a", key="k-1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    refused(await claim(api, coupon_id, "b", key="k-1"), 422, "idempotency-key-reused")
    other = await create_coupon(api)
    refused(await claim(api, other, "a", key="k-1"), 422, "idempotency-key-reused")
    # A refusal is an answer too: after the coupon is topped up, the key still says sold out.
    sold_out = await claim(api, coupon_id, "b", key="k-2")
    refused(sold_out, 409, "sold-out")
    await api.patch(f"{V2}/coupons/{coupon_id}", json={"quantity": 5}, headers=ADMIN)
    replayed = await claim(api, coupon_id, "b", key="k-2")
    refused(replayed, 409, "sold-out")
    assert replayed.headers["idempotent-replayed"] == "true"
    assert replayed.json() == sold_out.json()
    assert (await claim(api, coupon_id, "b", key="k-3")).status_code == 201
    state = await claim_state(pool, coupon_id)
    state.check()
    assert state.live_claims == 2


async def test_release_gives_the_coupon_back_once(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    coupon_id = await create_coupon(api, quantity=1)
    claim_id = (await claim(api, coupon_id, "a")).json()["id"]
    refused(await claim(api, coupon_id, "b"), 409, "sold-out")
    released = await api.post(f"{V2}/claims/{claim_id}/release")
    assert released.status_code == 200
    assert released.json()["status"] == "released"
    assert released.json()["released_at"].endswith("Z")
    refused(await api.post(f"{V2}/claims/{claim_id}/release"), 409, "already-released")
    refused(await api.post(f"{V2}/claims/{uuid4()}/release"), 404, "claim-not-found")
    refused(await api.post(f"{V2}/claims/123/release"), 422, "invalid-request")
    # The released claim no longer counts against the user's limit either.
    assert (await claim(api, coupon_id, "a")).status_code == 201
    state = await claim_state(pool, coupon_id)
    state.check()
    assert (state.remaining, state.live_claims, state.released) == (0, 1, 1)
    assert state.ledger == {"granted": 2, "released": 1}


async def test_redeem_exactly_once(api: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    coupon_id = await create_coupon(api, quantity=2)
    first = (await claim(api, coupon_id, "a")).json()
    typed = first["code"].lower().replace("-", " ").replace("0", "o").replace("1", "l")
    redeemed = await api.post(f"{V2}/claims/redeem", json={"code": typed})
    assert redeemed.status_code == 200
    assert (redeemed.json()["id"], redeemed.json()["status"]) == (first["id"], "redeemed")
    again = await api.post(f"{V2}/claims/redeem", json={"code": first["code"]})
    refused(again, 409, "already-redeemed")
    refused(await api.post(f"{V2}/claims/{first['id']}/release"), 409, "already-redeemed")
    second = (await claim(api, coupon_id, "b")).json()
    await api.post(f"{V2}/claims/{second['id']}/release")
    gone = await api.post(f"{V2}/claims/redeem", json={"code": second["code"]})
    refused(gone, 409, "already-released")
    unknown = await api.post(f"{V2}/claims/redeem", json={"code": "0000-0000-0000"})
    refused(unknown, 404, "claim-not-found")
    for bad in ({"code": "ABC"}, {"code": "UUUU-UUUU-UUUU"}, {"code": 5}, {}):
        refused(await api.post(f"{V2}/claims/redeem", json=bad), 422, "invalid-request")
    coupon = (await api.get(f"{V2}/coupons/{coupon_id}")).json()
    assert (coupon["claimed"], coupon["redeemed"], coupon["remaining"]) == (1, 1, 1)
    state = await claim_state(pool, coupon_id)
    state.check()
    assert state.ledger == {"granted": 2, "redeemed": 1, "released": 1}


async def test_claim_listings_page_with_a_cursor(api: httpx.AsyncClient) -> None:
    coupon_id = await create_coupon(api, quantity=10, per_user_limit=10)
    other = await create_coupon(api)
    made = [(await claim(api, coupon_id, "a" if n % 2 else "b")).json()["id"] for n in range(5)]
    await claim(api, other, "a")

    async def every(url: str, headers: dict[str, str]) -> list[str]:
        ids: list[str] = []
        cursor = None
        for _ in range(10):
            params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
            page = (await api.get(url, params=params, headers=headers)).json()
            ids += [item["id"] for item in page["items"]]
            if (cursor := page["next_cursor"]) is None:
                return ids
        raise AssertionError("too many pages")

    assert await every(f"{V2}/coupons/{coupon_id}/claims", ADMIN) == made
    users_a = await every(f"{V2}/users/a/claims", {})
    assert users_a[:2] == [made[1], made[3]]
    assert len(users_a) == 3
    assert (await api.get(f"{V2}/users/nobody/claims")).json() == {"items": [], "next_cursor": None}
    refused(await api.get(f"{V2}/coupons/{uuid4()}/claims", headers=ADMIN), 404, "coupon-not-found")
