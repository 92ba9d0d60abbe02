"""The v1 routes against the embedded PostgreSQL: every route, every error, exact outcomes."""

from __future__ import annotations

from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest

from couponapi.config import Settings
from tests.support import ledger_state

V1 = "/coupon/api/v1"
GIVE_PATHS = [
    "give",
    "give-transaction",
    "give-transaction-pgfunction",
    "give-atomic",
    "give-group-commit",
]


async def create(client: httpx.AsyncClient, amount: int = 2, **extra: object) -> UUID:
    response = await client.post(
        f"{V1}/create", json={"Type": "percent", "Amount": amount, **extra}
    )
    assert response.status_code == 200, response.text
    return UUID(response.json()["id"])


async def test_create_then_get_returns_the_original_wire_format(client: httpx.AsyncClient) -> None:
    coupon_id = uuid4()
    created = await client.post(
        f"{V1}/create",
        json={"ID": str(coupon_id), "name": "summer", "TYPE": "percent", "amount": 42},
    )
    assert created.status_code == 200
    expected = {"id": str(coupon_id), "Name": "summer", "Type": "percent", "Quantity": 42}
    assert created.json() == expected
    fetched = await client.get(f"{V1}/{coupon_id}")
    assert fetched.status_code == 200
    assert fetched.json() == expected


async def test_create_without_id_makes_one(client: httpx.AsyncClient) -> None:
    coupon_id = await create(client, amount=5)
    assert (await client.get(f"{V1}/{coupon_id}")).json()["Quantity"] == 5


async def test_list_is_empty_array_then_every_coupon(client: httpx.AsyncClient) -> None:
    assert (await client.get(f"{V1}/all")).json() == []
    ids = {str(await create(client)) for _ in range(3)}
    listed = (await client.get(f"{V1}/all")).json()
    assert {coupon["id"] for coupon in listed} == ids


async def test_duplicate_id_is_409(client: httpx.AsyncClient) -> None:
    coupon_id = await create(client)
    again = await client.post(f"{V1}/create", json={"Id": str(coupon_id), "Type": "x", "Amount": 1})
    assert again.status_code == 409
    assert again.json() == {"code": 409, "errorDescription": f"coupon {coupon_id} already exists"}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b'{"Type": "x", "Amount": -1}', 422),
        (b'{"Type": "x"}', 422),
        (b'{"Amount": 3}', 422),
        (b'{"Type": "x", "Amount": "3"}', 422),
        (b'{"Type": "x", "Amount": 99999999999}', 422),
        (b'{"Type": "x", "Amount": 3, "Id": "not-a-uuid"}', 422),
        (b'{"Type": "", "Amount": 3}', 422),
        (b"", 422),
        (b'{"Type": "x", "Amount": ', 400),
        (b"[1, 2]", 400),
        (b"\xff\xfe", 400),
    ],
)
async def test_bad_create_bodies_are_client_errors_and_store_nothing(
    client: httpx.AsyncClient, pool: asyncpg.Pool, body: bytes, status: int
) -> None:
    response = await client.post(f"{V1}/create", content=body)
    assert response.status_code == status
    assert response.json()["code"] == status
    assert response.json()["errorDescription"]
    assert await pool.fetchval("SELECT count(*) FROM coupon") == 0


async def test_huge_body_is_413(client: httpx.AsyncClient, settings: Settings) -> None:
    body = b'{"Type": "x", "Amount": 1, "Name": "' + b"a" * settings.max_body_bytes + b'"}'
    response = await client.post(f"{V1}/create", content=body)
    assert response.status_code == 413
    assert response.json()["code"] == 413


async def test_unknown_and_malformed_ids(client: httpx.AsyncClient) -> None:
    unknown = await client.get(f"{V1}/{uuid4()}")
    assert unknown.status_code == 404
    assert unknown.json()["code"] == 404
    malformed = await client.get(f"{V1}/12345")
    assert malformed.status_code == 400
    assert "malformed coupon id" in malformed.json()["errorDescription"]


async def test_unknown_route_keeps_the_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/coupon/api/v2/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"code": 404, "errorDescription": "Not Found"}


@pytest.mark.parametrize("path", GIVE_PATHS)
async def test_give_grants_then_409_when_sold_out(
    client: httpx.AsyncClient, pool: asyncpg.Pool, path: str
) -> None:
    coupon_id = await create(client, amount=2)
    first = await client.post(f"{V1}/{path}/{coupon_id}", headers={"X-User-Id": "alice"})
    assert first.status_code == 200
    # Exactly the original's answer: a JSON string; who and how many left in headers.
    assert first.json() == "Coupon Given To User alice!"
    assert (first.headers["x-user-id"], first.headers["x-quantity-left"]) == ("alice", "1")
    second = await client.post(f"{V1}/{path}/{coupon_id}", json={"userId": "bob"})
    assert second.status_code == 200
    assert second.json() == "Coupon Given To User bob!"
    assert (second.headers["x-user-id"], second.headers["x-quantity-left"]) == ("bob", "0")
    third = await client.post(f"{V1}/{path}/{coupon_id}")
    assert third.status_code == 409
    assert third.json() == {"code": 409, "errorDescription": f"coupon {coupon_id} has run out"}
    state = await ledger_state(pool, coupon_id)
    assert (state.quantity_left, state.ledger_rows) == (0, 2)
    users = await pool.fetch("SELECT userid, newquantity FROM coupon_given_events ORDER BY id")
    assert [(r["userid"], r["newquantity"]) for r in users] == [("alice", 1), ("bob", 0)]


@pytest.mark.parametrize("path", GIVE_PATHS)
async def test_give_without_user_makes_up_a_uuid(client: httpx.AsyncClient, path: str) -> None:
    coupon_id = await create(client)
    response = await client.post(f"{V1}/{path}/{coupon_id}")
    assert response.status_code == 200
    made_up = response.headers["x-user-id"]
    UUID(made_up)
    assert response.json() == f"Coupon Given To User {made_up}!"


@pytest.mark.parametrize("path", GIVE_PATHS)
async def test_give_errors(client: httpx.AsyncClient, pool: asyncpg.Pool, path: str) -> None:
    coupon_id = await create(client)
    unknown = await client.post(f"{V1}/{path}/{uuid4()}")
    assert unknown.status_code == 404
    assert (await client.post(f"{V1}/{path}/not-a-uuid")).status_code == 400
    broken = await client.post(f"{V1}/{path}/{coupon_id}", content=b"{")
    assert broken.status_code == 400
    too_long = await client.post(f"{V1}/{path}/{coupon_id}", headers={"X-User-Id": "u" * 129})
    assert too_long.status_code == 422
    empty = await client.post(f"{V1}/{path}/{coupon_id}", json={"userId": ""})
    assert empty.status_code == 422
    state = await ledger_state(pool, coupon_id)
    assert (state.quantity_left, state.ledger_rows) == (2, 0)


async def test_naive_route_can_be_switched_off(database_url: str) -> None:
    from couponapi.app import create_app

    app = create_app(Settings(database_url=database_url, enable_naive=False))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            coupon_id = await create(client)
            response = await client.post(f"{V1}/give/{coupon_id}")
    assert response.status_code == 403
    assert "disabled" in response.json()["errorDescription"]


async def test_swagger_ui_and_document(client: httpx.AsyncClient) -> None:
    page = await client.get("/swagger/index.html")
    assert page.status_code == 200
    assert "swagger-ui-bundle.js" in page.text
    assert (await client.get("/swagger/assets/swagger-ui-bundle.js")).status_code == 200
    document = (await client.get("/swagger/doc.json")).json()
    assert document["openapi"] == "3.0.3"
    paths = document["paths"]
    assert {path for path in paths if path.startswith(V1)} == {
        f"{V1}/all",
        f"{V1}/create",
        f"{V1}/{{coupon_id}}",
        *(f"{V1}/{path}/{{coupon_id}}" for path in GIVE_PATHS),
    }
    assert paths[f"{V1}/give/{{coupon_id}}"]["post"]["deprecated"] is True
    assert set(paths[f"{V1}/give-transaction/{{coupon_id}}"]["post"]["responses"]) == {
        "200", "400", "403", "404", "409", "422",
    }  # fmt: skip
