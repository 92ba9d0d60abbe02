"""The access table of docs/identity.md, one test per cell, from the caller's side.

Each action is tried by each kind of caller: no credentials, alice's user token, a server
key, the admin token (and an admin key). A refusal is checked to be problem+json with the
exact status (401 with WWW-Authenticate), and the database is compared before and after:
nothing written.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
import httpx
import pytest

from tests.identity.world import World, books, world
from tests.v2_support import V2

Action = Callable[[World, dict[str, str]], Awaitable[httpx.Response]]


async def read_coupon(w: World, h: dict[str, str]) -> httpx.Response:
    return await w.client.get(f"{V2}/coupons/{w.coupon_id}", headers=h)


async def list_coupons(w: World, h: dict[str, str]) -> httpx.Response:
    return await w.client.get(f"{V2}/coupons", headers=h)


async def claim_for_alice(w: World, h: dict[str, str]) -> httpx.Response:
    return await w.client.post(
        f"{V2}/coupons/{w.coupon_id}/claims", json={"user_id": "alice"}, headers=h
    )


async def claim_with_no_body(w: World, h: dict[str, str]) -> httpx.Response:
    return await w.client.post(f"{V2}/coupons/{w.coupon_id}/claims", headers=h)


async def claim_for_carol(w: World, h: dict[str, str]) -> httpx.Response:
    return await w.client.post(
        f"{V2}/coupons/{w.coupon_id}/claims", json={"user_id": "carol"}, headers=h
    )


async def list_bobs_claims(w: World, h: dict[str, str]) -> httpx.Response:
    return await w.client.get(f"{V2}/users/bob/claims", headers=h)


async def list_alices_claims(w: World, h: dict[str, str]) -> httpx.Response:
    return await w.client.get(f"{V2}/users/alice/claims", headers=h)


async def list_my_claims(w: World, h: dict[str, str]) -> httpx.Response:
    return await w.client.get(f"{V2}/me/claims", headers=h)


async def release_bobs(w: World, h: dict[str, str]) -> httpx.Response:
    return await w.client.post(f"{V2}/claims/{w.claims['bob']['id']}/release", headers=h)


async def release_alices(w: World, h: dict[str, str]) -> httpx.Response:
    return await w.client.post(f"{V2}/claims/{w.claims['alice']['id']}/release", headers=h)


async def redeem_bobs(w: World, h: dict[str, str]) -> httpx.Response:
    return await w.client.post(
        f"{V2}/claims/redeem", json={"code": w.claims["bob"]["code"]}, headers=h
    )


async def redeem_alices(w: World, h: dict[str, str]) -> httpx.Response:
    return await w.client.post(
        f"{V2}/claims/redeem", json={"code": w.claims["alice"]["code"]}, headers=h
    )


async def create_coupon(w: World, h: dict[str, str]) -> httpx.Response:
    return await w.client.post(
        f"{V2}/coupons", json={"name": "n", "type": "t", "quantity": 1}, headers=h
    )


async def change_coupon(w: World, h: dict[str, str]) -> httpx.Response:
    return await w.client.patch(f"{V2}/coupons/{w.coupon_id}", json={"paused": True}, headers=h)


async def coupon_claim_list(w: World, h: dict[str, str]) -> httpx.Response:
    return await w.client.get(f"{V2}/coupons/{w.coupon_id}/claims", headers=h)


async def create_key(w: World, h: dict[str, str]) -> httpx.Response:
    return await w.client.post(f"{V2}/keys", json={"name": "more", "scope": "server"}, headers=h)


async def list_keys(w: World, h: dict[str, str]) -> httpx.Response:
    return await w.client.get(f"{V2}/keys", headers=h)


async def revoke_key(w: World, h: dict[str, str]) -> httpx.Response:
    return await w.client.delete(f"{V2}/keys/checkout", headers=h)


async def read_the_feed(w: World, h: dict[str, str]) -> httpx.Response:
    return await w.client.get(f"{V2}/events", headers=h)


async def register_webhook(w: World, h: dict[str, str]) -> httpx.Response:
    return await w.client.post(
        f"{V2}/webhooks", json={"url": "http://127.0.0.1:9/other"}, headers=h
    )


async def list_webhooks(w: World, h: dict[str, str]) -> httpx.Response:
    return await w.client.get(f"{V2}/webhooks", headers=h)


async def read_webhook(w: World, h: dict[str, str]) -> httpx.Response:
    return await w.client.get(f"{V2}/webhooks/{w.webhook_id}", headers=h)


async def enable_webhook(w: World, h: dict[str, str]) -> httpx.Response:
    return await w.client.patch(f"{V2}/webhooks/{w.webhook_id}", json={"enabled": True}, headers=h)


async def delete_webhook(w: World, h: dict[str, str]) -> httpx.Response:
    return await w.client.delete(f"{V2}/webhooks/{w.webhook_id}", headers=h)


async def rotate_webhook_secret(w: World, h: dict[str, str]) -> httpx.Response:
    return await w.client.post(f"{V2}/webhooks/{w.webhook_id}/rotate-secret", headers=h)


async def webhook_deliveries(w: World, h: dict[str, str]) -> httpx.Response:
    return await w.client.get(f"{V2}/webhooks/{w.webhook_id}/deliveries", headers=h)


ALL = ("none", "user", "server", "admin", "admin-key")
ADMIN_ONLY = {"none": 401, "user": 403, "server": 403, "admin": None, "admin-key": None}
CELLS: list[tuple[str, Action, dict[str, int | None]]] = [
    # (row of the table, action, caller -> status; None: allowed, 2xx)
    ("read a coupon's counts", read_coupon, dict.fromkeys(ALL, None)),
    ("list coupons", list_coupons, dict.fromkeys(ALL, None)),
    (
        "claim",
        claim_for_alice,
        {"none": 401, "user": None, "server": None, "admin": None, "admin-key": None},
    ),
    (
        "claim, no body",
        claim_with_no_body,
        {"none": 401, "user": None, "server": 422, "admin": 422},
    ),
    (
        "claim for another user",
        claim_for_carol,
        {"none": 401, "user": 403, "server": None, "admin": None, "admin-key": None},
    ),
    (
        "list another user's claims",
        list_bobs_claims,
        {"none": 401, "user": 403, "server": None, "admin": None, "admin-key": None},
    ),
    ("list own claims by id", list_alices_claims, {"none": 401, "user": None}),
    (
        "list own claims (/me)",
        list_my_claims,
        {"none": 401, "user": None, "server": 403, "admin": 403},
    ),
    (
        "release another's claim",
        release_bobs,
        {"none": 401, "user": 403, "server": None, "admin": None},
    ),
    ("release own claim", release_alices, {"none": 401, "user": None, "admin-key": None}),
    ("redeem a code", redeem_bobs, {"none": 401, "user": 403, "server": None, "admin": None}),
    ("redeem own code", redeem_alices, {"user": 403, "admin-key": None}),
    ("create a coupon", create_coupon, ADMIN_ONLY),
    ("change a coupon", change_coupon, ADMIN_ONLY),
    ("a coupon's claim list", coupon_claim_list, ADMIN_ONLY),
    ("create a key", create_key, ADMIN_ONLY),
    ("list the keys", list_keys, ADMIN_ONLY),
    ("revoke a key", revoke_key, ADMIN_ONLY),
    (
        "read the event feed",
        read_the_feed,
        {"none": 401, "user": 403, "server": None, "admin": None, "admin-key": None},
    ),
    ("register a webhook", register_webhook, ADMIN_ONLY),
    ("list the webhooks", list_webhooks, ADMIN_ONLY),
    ("read a webhook", read_webhook, ADMIN_ONLY),
    ("enable a webhook", enable_webhook, ADMIN_ONLY),
    ("delete a webhook", delete_webhook, ADMIN_ONLY),
    ("rotate a webhook's secret", rotate_webhook_secret, ADMIN_ONLY),
    ("a webhook's deliveries", webhook_deliveries, ADMIN_ONLY),
]
PARAMS = [
    pytest.param(action, who, status, id=f"{row} / {who}")
    for row, action, statuses in CELLS
    for who, status in statuses.items()
]


@pytest.mark.parametrize(("action", "who", "status"), PARAMS)
async def test_access_table_cell(
    database_url: str, pool: asyncpg.Pool, action: Action, who: str, status: int | None
) -> None:
    async with world(database_url) as w:
        before = await books(pool)
        answer = await action(w, w.headers[who])
        if status is None:
            assert 200 <= answer.status_code < 300, answer.text
            return
        assert answer.status_code == status, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        if status == 401:
            assert answer.headers["www-authenticate"].startswith("Bearer")
        assert await books(pool) == before


@pytest.mark.parametrize("who", ["none", "user", "server", "admin"])
async def test_a_setting_closes_the_coupon_reads(
    database_url: str, pool: asyncpg.Pool, who: str
) -> None:
    async with world(database_url, open_reads=False) as w:
        one, page = await read_coupon(w, w.headers[who]), await list_coupons(w, w.headers[who])
    expected = 401 if who == "none" else 200
    assert (one.status_code, page.status_code) == (expected, expected)


async def test_a_user_token_claims_for_itself_with_no_body_or_an_empty_one(
    database_url: str, pool: asyncpg.Pool
) -> None:
    async with world(database_url) as w:
        url = f"{V2}/coupons/{w.coupon_id}/claims"
        bare = await w.client.post(url, headers=w.headers["user"])
        empty = await w.client.post(url, json={}, headers=w.headers["user"])
        mine = (await list_my_claims(w, w.headers["user"])).json()["items"]
    assert (bare.status_code, empty.status_code) == (201, 201)
    assert bare.json()["user_id"] == empty.json()["user_id"] == "alice"
    assert [c["user_id"] for c in mine] == ["alice"] * 3
    held = await pool.fetchval("SELECT count(*) FROM claim WHERE user_id = 'alice'")
    assert held == 3


async def test_a_user_learns_nothing_of_another_users_claim(
    database_url: str, pool: asyncpg.Pool
) -> None:
    async with world(database_url) as w:
        bobs = await release_bobs(w, w.headers["user"])
        nobodys = await w.client.post(
            f"{V2}/claims/00000000-0000-0000-0000-000000000001/release", headers=w.headers["user"]
        )

    def shape(answer: httpx.Response) -> tuple[int, str, str]:
        body = answer.json()
        return answer.status_code, body["type"], body["detail"].split(" ")[0]

    assert shape(bobs) == shape(nobodys) == (403, "/problems/not-permitted", "claim")
    assert await pool.fetchval("SELECT status FROM claim WHERE user_id = 'bob'") == "claimed"
