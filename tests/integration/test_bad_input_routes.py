"""Bad input on every writing route: a clear 4xx, and nothing stored.

Malformed JSON, wrong types, huge numbers, over-long or strange strings (control characters,
NUL, which PostgreSQL text cannot hold, unicode, SQL fragments), oversized bodies, bad pages.
SQL fragments are data: where the value is otherwise valid it is stored verbatim, harmlessly.
"""

from __future__ import annotations

from urllib.parse import unquote
from uuid import uuid4

import asyncpg
import httpx
import pytest

V1 = "/coupon/api/v1"
V2 = "/api/v2"
GIVES = ["give", "give-transaction", "give-transaction-pgfunction"]


async def stored(pool: asyncpg.Pool) -> tuple[int, int, int]:
    """Coupons, v1 ledger rows and v2 claims in the database."""
    row = await pool.fetchrow(
        """SELECT (SELECT count(*) FROM coupon) AS coupons,
                  (SELECT count(*) FROM coupon_given_events) AS given,
                  (SELECT count(*) FROM claim) AS claims"""
    )
    assert row is not None
    return row["coupons"], row["given"], row["claims"]


CREATE_V1 = [
    (b'{"Type": "x", "Amount": ', 400),  # cut short
    (b"[1, 2]", 400),  # not an object
    (b'{"Type": "x", "Amount": 1}}', 400),  # trailing garbage
    (b"\xff\xfe{}", 400),  # not UTF-8
    (b'{"Type": "x", "Amount": "5"}', 422),  # a number as a string
    (b'{"Type": "x", "Amount": 1.5}', 422),
    (b'{"Type": "x", "Amount": true}', 422),
    (b'{"Type": 5, "Amount": 1}', 422),
    (b'{"Type": "x", "Amount": -1}', 422),
    (b'{"Type": "x", "Amount": 2147483648}', 422),  # past PostgreSQL's integer
    (b'{"Type": "x", "Amount": 100000000000000000000000000000}', 422),  # past any int
    (b'{"Type": "x", "Amount": 1e400}', 400),  # past any float: not JSON we can read
    (b'{"Type": "", "Amount": 1}', 422),
    (b'{"Type": "' + b"t" * 101 + b'", "Amount": 1}', 422),
    (b'{"Type": "x", "Name": "' + b"n" * 201 + b'", "Amount": 1}', 422),
    (b'{"Type": "x", "Amount": 1, "Id": "1; DROP TABLE coupon"}', 422),
    (b'{"Type": "nul\\u0000here", "Amount": 1}', 422),  # PostgreSQL text cannot hold NUL
    (b'{"Type": "x", "Name": "\\u0000", "Amount": 1}', 422),
]


async def test_v1_create_refuses_bad_bodies(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    for body, status in CREATE_V1:
        response = await client.post(
            f"{V1}/create", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == status, (body, response.text)
        assert response.json()["code"] == status
    assert await stored(pool) == (0, 0, 0)


async def test_oversized_bodies_are_413_on_every_writing_route(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    huge = b'{"userId": "' + b"x" * 20_000 + b'"}'
    coupon_id = uuid4()
    for path in [
        f"{V1}/create",
        f"{V1}/give-transaction/{coupon_id}",
        f"{V2}/coupons/{coupon_id}/claims",
    ]:
        response = await client.post(path, content=huge)
        assert response.status_code == 413, path
    assert await stored(pool) == (0, 0, 0)


BAD_USER_IDS = [
    "",
    "u" * 129,
    "nul\x00byte",
    "tab\there",
    "line\nbreak",
    "trailing newline\n",
    "bell\x07",
    "del\x7f",
]


async def test_v1_give_refuses_bad_user_ids_before_any_write(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    coupon_id = uuid4()
    await pool.execute(
        "INSERT INTO coupon (id, type, quantity) VALUES ($1, 'percent', 3)", coupon_id
    )
    for path in GIVES:
        for user_id in BAD_USER_IDS:
            response = await client.post(f"{V1}/{path}/{coupon_id}", json={"userId": user_id})
            assert response.status_code == 422, (path, user_id, response.text)
    assert await pool.fetchval("SELECT quantity FROM coupon WHERE id = $1", coupon_id) == 3
    assert await stored(pool) == (1, 0, 0)


async def test_v2_claim_refuses_bad_user_ids(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    coupon_id = uuid4()
    await pool.execute(
        "INSERT INTO coupon (id, type, quantity) VALUES ($1, 'percent', 3)", coupon_id
    )
    for user_id in BAD_USER_IDS:
        response = await client.post(f"{V2}/coupons/{coupon_id}/claims", json={"user_id": user_id})
        assert response.status_code == 422, (user_id, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert await stored(pool) == (1, 0, 0)


V2_BODIES = [b"{", b"[]", b'{"user_id": 5}', b'{"user_id": null}', b'{"user_id": "a", "x": 1}', b""]
STRANGE_USER_IDS = [
    "'; DROP TABLE coupon; --",
    "1 OR 1=1",
    "Robert'); DELETE FROM coupon_given_events;--",
    "émoji 😀 ünïcödé ﷽",
    "\u202etxt.exe",  # right-to-left override: printable, stored as sent
    "$1",
]


async def test_v2_claim_refuses_malformed_bodies(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    coupon_id = uuid4()
    await pool.execute(
        "INSERT INTO coupon (id, type, quantity) VALUES ($1, 'percent', 3)", coupon_id
    )
    for body in V2_BODIES:
        response = await client.post(
            f"{V2}/coupons/{coupon_id}/claims",
            content=body,
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 422, (body, response.text)
    assert await stored(pool) == (1, 0, 0)


async def test_strange_but_printable_user_ids_are_data(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    coupon_id = uuid4()
    await pool.execute(
        "INSERT INTO coupon (id, type, quantity) VALUES ($1, 'percent', 20)", coupon_id
    )
    for user_id in STRANGE_USER_IDS:
        v1 = await client.post(f"{V1}/give-transaction/{coupon_id}", json={"userId": user_id})
        assert v1.status_code == 200, (user_id, v1.text)
        assert v1.json() == f"Coupon Given To User {user_id}!"
        assert unquote(v1.headers["x-user-id"]) == user_id
        v2 = await client.post(f"{V2}/coupons/{coupon_id}/claims", json={"user_id": user_id})
        assert (v2.status_code, v2.json()["user_id"]) == (201, user_id)
    given = {r["userid"] for r in await pool.fetch("SELECT userid FROM coupon_given_events")}
    claimed = {r["user_id"] for r in await pool.fetch("SELECT user_id FROM claim")}
    assert given == claimed == set(STRANGE_USER_IDS)  # stored verbatim, every table still there
    assert await stored(pool) == (1, 6, 6)


@pytest.mark.parametrize(
    "path",
    [
        f"{V1}/give-transaction/not-a-uuid",
        f"{V1}/give-transaction/%00",
        f"{V1}/give-transaction/1%3B%20DROP%20TABLE%20coupon",
        f"{V1}/give-transaction/{'9' * 5000}",
    ],
)
async def test_v1_malformed_coupon_ids_are_400(
    client: httpx.AsyncClient, pool: asyncpg.Pool, path: str
) -> None:
    response = await client.post(path)
    assert response.status_code == 400
    assert await stored(pool) == (0, 0, 0)


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=201", "limit=-1", "limit=abc", "limit=99999999999999999999", "cursor=%00"],
)
async def test_v2_bad_pages_are_422(client: httpx.AsyncClient, query: str) -> None:
    response = await client.get(f"{V2}/users/someone/claims?{query}")
    assert response.status_code == 422, response.text


async def test_v2_user_path_with_nul_is_a_4xx(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{V2}/users/a%00b/claims")
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("key", ["", "k" * 256, "spaces are not visible ascii", "ключ", "tab\tkey"])
async def test_v2_bad_idempotency_keys_are_422(
    client: httpx.AsyncClient, pool: asyncpg.Pool, key: str
) -> None:
    coupon_id = uuid4()
    await pool.execute(
        "INSERT INTO coupon (id, type, quantity) VALUES ($1, 'percent', 3)", coupon_id
    )
    response = await client.post(
        f"{V2}/coupons/{coupon_id}/claims",
        json={"user_id": "someone"},
        headers=[(b"Idempotency-Key", key.encode())],
    )
    assert response.status_code == 422, response.text
    assert await stored(pool) == (1, 0, 0)
